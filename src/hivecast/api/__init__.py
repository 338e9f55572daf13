"""The REST management API under /api/v1."""
