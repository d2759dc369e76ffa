"""Django-level error handlers that answer in the API's error envelope."""

from wafaa.api.exceptions import error_response


def not_found(request, exception=None):
    return error_response("not_found", f"No endpoint at {request.path}.", 404)


def server_error(request):
    return error_response(
        "server_error", "Something went wrong on our side. Quote the request id to support.", 500
    )
