from django.conf import settings


def inventiv(request):
    # PUBLIC_ENGINES: every page says so while GPU machines' engine ports are open to the internet
    # (INVENTIV_ALLOW_PUBLIC_ENGINES=1, README "Configuration").
    # LIVE_REFRESH_S: the period of the live pages' refresh (templates/_live.html).
    return {"INVENTIV_VERSION": settings.VERSION, "PUBLIC_ENGINES": settings.ALLOW_PUBLIC_ENGINES,
            "LIVE_REFRESH_S": settings.LIVE_REFRESH_S}
