"""Streamlit app of curation-studio: see ``app.py`` (router), ``views/`` (pages),
``components/`` (pure figure builders, the gallery) and ``services.py`` (caching)."""
