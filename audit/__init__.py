"""The audit trail: who changed what, when and through which interface (django-pghistory triggers)."""
