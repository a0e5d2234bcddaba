from django.urls import path

from autoscaling import views

# Namespaced: the API router already names its routes pool-list, pool-detail, pool-samples...
app_name = "autoscaling"

urlpatterns = [
    path("", views.pool_list, name="pools"),
    path("new/", views.pool_create, name="pool-create"),
    path("<slug:name>/", views.pool_detail, name="pool"),
    path("<slug:name>/row/", views.pool_row, name="pool-row"),
    path("<slug:name>/edit/", views.pool_edit, name="pool-edit"),
    path("<slug:name>/toggle/", views.pool_toggle, name="pool-toggle"),
    path("<slug:name>/delete/", views.pool_delete, name="pool-delete"),
]
