"""Cloud inventory: provider adapters (AWS, GCP) behind one interface, the sync service, on-prem import."""
