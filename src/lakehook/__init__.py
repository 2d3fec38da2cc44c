"""lakehook: Shopify, Stripe and HubSpot webhooks into one Apache Iceberg lakehouse.

The public surface is small: the ``lakehook`` command line, :class:`lakehook.settings.Settings`
and the app factory :func:`lakehook.ingest.app.create_app`. Everything else is internal.
"""

__version__ = "0.1.0"
