"""How every list endpoint of the API pages: DRF's DEFAULT_PAGINATION_CLASS (settings.REST_FRAMEWORK).

A list answers {"count", "next", "previous", "results"}: `count` rows in all, `results` this page's, `next` and
`previous` the URLs of the neighbouring pages (null at either end). `?page=N` picks a page, `?page_size=M` its
length, PAGE_SIZE (50) by default and at most 200.
"""

from rest_framework.pagination import PageNumberPagination


class StudioPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200
