from django.conf import settings


def inventiv(request):
    return {"INVENTIV_VERSION": settings.VERSION}
