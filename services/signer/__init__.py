"""Signer: the signing page behind each emailed link, and the PAdES signatures it makes."""
