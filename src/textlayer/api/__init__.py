"""The HTTP API for upload clients: tenants with tokens, streamed uploads, jobs, downloads, search, signed webhooks.

``app.py`` builds the ASGI app (FastAPI) and serves it with uvicorn; ``routes.py`` holds the endpoints;
``context.py`` the collaborators they share; ``tenants.py`` tenants, hashed tokens and upload events (SQLite);
``auth.py`` bearer authentication; ``limits.py`` per-tenant quotas; ``uploads.py`` the streamed upload;
``webhooks.py`` callback URL policy (SSRF), Standard Webhooks signatures and sending; ``deliveries.py`` the
delivery store and dispatcher; ``retention.py`` deletion and the retention sweep; ``metrics.py`` Prometheus;
``schemas.py`` the JSON shapes; ``errors.py`` the one error shape.
"""
