"""The reference worker: validates extracted-entity documents and reports
each outcome to the API over HTTP, as a real worker would."""
