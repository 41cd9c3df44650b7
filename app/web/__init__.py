"""The web layer shared by the blueprints: error rendering, query-string
parsing and JSON shapes.

Blueprints (``api``, ``dashboard``, ``exports``) never import each other;
what two of them need lives here, above the services and below the views.
"""
