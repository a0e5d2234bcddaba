def register(router):
    """Register the catalog viewsets on the project router."""
