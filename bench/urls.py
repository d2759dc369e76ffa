"""The real URLs plus /bench/noop: a bare Django view returning 200, the baseline."""

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as real_urlpatterns


@csrf_exempt
def noop(request):
    return HttpResponse(b"ok")


urlpatterns = [path("bench/noop", noop), *real_urlpatterns]
