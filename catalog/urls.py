from django.urls import path

from catalog import views

# The page and its tabs share the name "settings" (the nav link reverses it with no tab), so the
# top bar marks Settings active on every tab.
urlpatterns = [
    path("", views.settings_page, name="settings"),
    path("instance-types/<int:pk>/zones/", views.edit_zones, name="settings-zones"),
    # Before the tab patterns: these paths would read as a tab's slug.
    path("launch-plan/", views.launch_plan_panel, name="launch-plan"),
    path("machine-secrets/", views.machine_secrets, name="machine-secrets"),
    path("<slug:tab>/", views.settings_page, name="settings"),
    path("<slug:tab>/new/", views.create_row, name="settings-create"),
    path("<slug:tab>/<int:pk>/", views.row, name="settings-row"),
    path("<slug:tab>/<int:pk>/edit/", views.edit_row, name="settings-edit"),
    path("<slug:tab>/<int:pk>/toggle/", views.toggle_row, name="settings-toggle"),
]
