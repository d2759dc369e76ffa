"""Static files come from the app itself: the admin has its CSS under gunicorn, with no
separate file server (whitenoise)."""


def test_the_admin_stylesheet_is_served_by_the_app(client):
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert b"body" in b"".join(response.streaming_content)


def test_an_unknown_static_file_is_a_404(client):
    assert client.get("/static/admin/css/no-such-file.css").status_code == 404


def test_collectstatic_gathers_the_admin_assets_for_production(settings, tmp_path):
    """What the Dockerfile runs: every asset, with a compressed copy, in STATIC_ROOT."""
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    assert (tmp_path / "admin" / "css" / "base.css").exists()
    assert (tmp_path / "admin" / "css" / "base.css.gz").exists()
