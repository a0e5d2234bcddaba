from rest_framework import pagination

MAX_PAGE_SIZE = 500


class PageNumberPagination(pagination.PageNumberPagination):
    """Pages with a total `count`; clients may ask for up to MAX_PAGE_SIZE rows a page."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
