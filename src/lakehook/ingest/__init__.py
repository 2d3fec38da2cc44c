"""Verified webhook ingestion: the front door of lakehook.

- :mod:`lakehook.ingest.app`: the FastAPI app factory ``create_app`` that ``lakehook serve`` runs;
- :mod:`lakehook.ingest.signatures`: Shopify, Stripe and HubSpot signature schemes;
- :mod:`lakehook.ingest.envelopes`: one verified request → envelopes (byte-exact payloads);
- :mod:`lakehook.ingest.topics`: the topics lakehook understands (others are quarantined);
- :mod:`lakehook.ingest.signing`: provider-style signed requests, for tests and benchmarks.
"""
