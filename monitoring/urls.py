from django.urls import path

from monitoring import views

urlpatterns = [
    path("", views.action_log, name="monitoring"),
]
