//! Scores out to Braze through `/users/track` and Cloud Data Ingestion (being written).
