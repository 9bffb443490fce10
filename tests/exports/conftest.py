import pytest


@pytest.fixture
def immediate_tasks(settings, transactional_db):
    """Run queued exports at once, inside the request, as if a worker picked them up (exports are queued once
    their row is committed: the test's data is committed too)."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture
def data_dir(settings, tmp_path):
    """Web and API exports go to DATA_DIR/exports/<id>/: keep them in the test's own directory."""
    settings.DATA_DIR = tmp_path
    return tmp_path
