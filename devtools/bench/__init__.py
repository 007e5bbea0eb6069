"""Benchmarks: each builds its own data in a throwaway database, times the product path beside a baseline
measured in the same run, and prints one JSON line. Run with ``python manage.py bench NAME``."""
