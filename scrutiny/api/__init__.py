"""The REST API: the FastAPI app (``app.py``) and its thin routers (``routes/``)."""
