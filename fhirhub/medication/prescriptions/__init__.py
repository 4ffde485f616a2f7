"""The prescription lifecycle: dispenses against dispenseRequest, refills and refill
requests, running-out reminders, adherence, and the messages they send."""
