from django.urls import path

from router import views

app_name = "router"

urlpatterns = [
    path("api-keys/", views.api_key_list, name="api-keys"),
    path("api-keys/new/", views.api_key_create, name="api-key-create"),
    path("api-keys/<int:pk>/revoke/", views.api_key_revoke, name="api-key-revoke"),
    path("traces/", views.trace_list, name="traces"),
    path("models/", views.model_list, name="models"),
    path("playground/", views.playground, name="playground"),
]
