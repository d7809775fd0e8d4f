"""finward: a security gateway for financial (PSD2 / open banking) APIs."""

__version__ = "0.1.0"
