from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from catalog.selectors import catalog_summary


@login_required
def home(request):
    return render(request, "home.html", {"summary": catalog_summary()})
