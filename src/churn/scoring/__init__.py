"""Batch scoring of the customer base, and the reasons behind every score."""
