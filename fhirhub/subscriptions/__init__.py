"""Subscriptions and care-team routing: who hears about which change, and in what form."""
