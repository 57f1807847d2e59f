"""Data: seeded synthetic tasks and the datasets built from them."""
