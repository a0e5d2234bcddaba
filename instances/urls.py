from django.urls import path

from instances import views

# Namespaced: the API router already names its routes instance-list, instance-detail, instance-archive...
app_name = "instances"

urlpatterns = [
    path("", views.instance_list, name="list"),
    path("new/", views.instance_create, name="create"),
    path("hosts/new/", views.host_register, name="host-register"),
    path("options/instance-types/", views.instance_type_options, name="type-options"),
    path("options/models/", views.model_options, name="model-options"),
    path("archived/", views.archived_list, name="archived"),
    path("<uuid:pk>/", views.instance_detail, name="detail"),
    path("<uuid:pk>/row/", views.instance_row, name="row"),
    path("<uuid:pk>/worker/", views.instance_worker, name="worker"),
    path("<uuid:pk>/terminate/", views.instance_terminate, name="terminate"),
    path("<uuid:pk>/archive/", views.instance_archive, name="archive"),
    path("<uuid:pk>/drain/", views.instance_drain, name="drain"),
]
