from django.urls import path

from finops import api, views

app_name = "finops"

urlpatterns = [
    path("finops/", views.finops_page, name="page"),
    path("metrics", views.metrics_view, name="metrics"),
    path("api/finops/summary/", api.summary, name="api-summary"),
    path("api/finops/spend/", api.spend, name="api-spend"),
    path("api/finops/series/", api.series, name="api-series"),
    path("api/finops/token-costs/", api.token_costs, name="api-token-costs"),
]
