"""Referrals: ServiceRequest + Task workflow, the Consent that shares records with the
specialist while the referral is open, and results routed back to the referring team."""
