from django.conf import settings


def inventiv(request):
    # PUBLIC_ENGINES: every page says so while GPU machines' engine ports are open to the internet
    # (INVENTIV_ALLOW_PUBLIC_ENGINES=1, README "Configuration").
    return {"INVENTIV_VERSION": settings.VERSION, "PUBLIC_ENGINES": settings.ALLOW_PUBLIC_ENGINES}
