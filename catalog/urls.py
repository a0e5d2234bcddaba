from django.urls import path

from catalog import views

urlpatterns = [
    path("", views.settings_page, name="settings"),
]
