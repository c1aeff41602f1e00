"""Purpose-bound, least-privilege access to personal information, and the access log."""
