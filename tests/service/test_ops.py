from tests.conftest import make_client


def test_health_and_ready(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert set(r.json()["models"]) == {"vae", "gan", "classifier"}


def test_not_ready_before_startup(tiny_weights):
    c = make_client(tiny_weights)  # no `with`: the lifespan has not run
    assert c.get("/readyz").status_code == 503
    r = c.get("/sample")
    assert r.status_code == 503 and "not loaded" in r.json()["detail"]


def test_models_lists_cards(client):
    body = client.get("/models").json()
    assert body["device"] == "cpu"
    names = {m["name"]: m for m in body["models"]}
    assert names["gan"]["kind"] == "generator" and "family" not in names["gan"]
    assert names["vae"]["latent_dim"] == 4 and names["vae"]["parameters"] > 0
    assert len(names["vae"]["weights_sha256"]) == 64
    assert client.get("/models/gan").json()["name"] == "gan"
    assert client.get("/models/nope").status_code == 404


def test_metrics_count_requests_batches_and_images(client):
    client.get("/sample", params={"model": "gan", "n": 3, "seed": 1})
    text = client.get("/metrics").text
    assert 'digitgen_requests_total{method="GET",model="gan",route="/sample",status="200"}' in text
    assert 'digitgen_request_duration_seconds_bucket{le="0.005",model="gan",route="/sample"}' in text
    assert 'digitgen_batch_size_count{model="gan"}' in text
    assert 'digitgen_images_generated_total{model="gan"}' in text
    assert "digitgen_ready 1.0" in text


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    for path in ("/sample", "/reconstruct", "/interpolate", "/encode", "/decode", "/models", "/healthz", "/readyz",
                 "/metrics"):
        assert path in spec["paths"], path
    assert "SampleResponse" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_api_key(tiny_weights):
    with make_client(tiny_weights, api_key="s3cret") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        for path in ("/sample", "/models"):
            r = c.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/sample", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/sample", headers={"Authorization": "Basic s3cret"}).status_code == 401
        assert c.get("/sample", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_cors_is_off_unless_configured(client, tiny_weights):
    r = client.get("/healthz", headers={"Origin": "https://example.org"})
    assert "access-control-allow-origin" not in r.headers
    with make_client(tiny_weights, cors_origins=["https://example.org"]) as c:
        r = c.get("/healthz", headers={"Origin": "https://example.org"})
        assert r.headers["access-control-allow-origin"] == "https://example.org"
