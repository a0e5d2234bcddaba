from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from inventiv import views
from inventiv.api import router, version

# A database error raised outside a view (a middleware) is a 503 too (inventiv/unavailable.py).
handler500 = "inventiv.unavailable.server_error"
# A path under /api/ that no endpoint matches answers the API's error shape (README, "API conventions").
handler404 = "inventiv.api_errors.not_found"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/version/", version, name="api-version"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Served from the project's static files, inside the site's frame: they work offline (README, "Using it").
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema", template_name="api_docs/swagger_ui.html"),
         name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema", template_name="api_docs/redoc.html"),
         name="api-redoc"),
    path("api/worker/", include("instances.worker_api")),
    path("api/", include(router.urls)),
    path("settings/", include("catalog.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("instances/", include("instances.urls")),
    path("pools/", include("autoscaling.urls")),
    path("", include("router.urls")),
    path("", include("finops.urls")),
]
