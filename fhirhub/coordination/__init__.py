"""Care coordination (issue 18): referrals with specialist access, and more to come."""
