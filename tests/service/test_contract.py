"""The service's one error shape, its /openapi.json as a user reads it, offline /docs and HEAD."""
import io

import pytest
from fastapi.testclient import TestClient

from service.errors import CODES
from service.main import create_app
from tests.conftest import make_client, make_settings


def assert_error(response, status: int, code: str):
    body = response.json()
    assert response.status_code == status, body
    assert set(body) >= {"detail", "code", "errors"} and body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"] and isinstance(body["errors"], list)
    assert CODES[code][0] == status


@pytest.mark.parametrize("method,url,kwargs,status,code", [
    ("get", "/nowhere", {}, 404, "not_found"),
    ("delete", "/sample", {}, 405, "method_not_allowed"),
    ("get", "/sample?n=0", {}, 422, "invalid_parameters"),
    ("get", "/sample?n=5000", {}, 422, "limit_exceeded"),
    ("get", "/sample?n=4096&scale=16", {}, 422, "output_too_large"),
    ("get", "/sample?model=nope", {}, 404, "model_not_found"),
    ("get", "/sample?model=classifier", {}, 422, "wrong_model_kind"),
    ("post", "/encode?model=gan", {"content": b"x", "headers": {"Content-Type": "image/png"}}, 422, "wrong_model_kind"),
    ("post", "/encode", {"content": b"not an image", "headers": {"Content-Type": "image/png"}}, 400, "invalid_image"),
    ("post", "/encode", {"content": b"{}", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
    ("post", "/reconstruct", {"content": b"\0" * (6 << 20), "headers": {"Content-Type": "image/png"}}, 413,
     "payload_too_large"),
    ("post", "/decode", {"json": {"latents": [[0.0] * 3]}}, 422, "invalid_latent"),
    ("post", "/decode", {"json": {"latents": [[True] * 4]}}, 422, "invalid_parameters"),
    ("post", "/decode", {"content": b"{nope", "headers": {"Content-Type": "application/json"}}, 422,
     "invalid_parameters"),
    ("post", "/interpolate", {"content": b"{nope", "headers": {"Content-Type": "application/json"}}, 422,
     "invalid_parameters"),
    ("post", "/interpolate", {"files": {"image_a": ("a.png", b"x")}}, 422, "invalid_parameters"),
])
def test_every_error_has_one_shape_and_a_stable_code(client, method, url, kwargs, status, code):
    assert_error(getattr(client, method)(url, **kwargs), status, code)


def test_validation_errors_list_each_field_without_echoing_the_input(client):
    r = client.get("/sample?n=0&scale=secret-value")
    assert_error(r, 422, "invalid_parameters")
    locs = {tuple(e["loc"]) for e in r.json()["errors"]}
    assert locs == {("query", "n"), ("query", "scale")}
    assert "secret-value" not in r.text


def test_405_names_every_method_of_the_path(client):
    r = client.delete("/interpolate")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, HEAD, POST"


def test_401_and_503_have_the_shape_too(tiny_weights):
    with make_client(tiny_weights, api_key="k") as c:
        r = c.get("/sample")
        assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
    cold = TestClient(create_app(make_settings(tiny_weights)))  # no `with`: the lifespan never ran
    assert_error(cold.get("/models"), 503, "not_ready")
    assert_error(cold.get("/readyz"), 503, "not_ready")


def test_every_code_is_documented_in_the_readme():
    from tests.conftest import ROOT
    readme = (ROOT / "README.md").read_text()
    missing = [code for code in CODES if f"`{code}`" not in readme]
    assert not missing, f"README's error table lacks {missing}"


# ---- /openapi.json ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schema(client):
    return client.get("/openapi.json").json()


def _param(schema, path, method, name):
    return next(p for p in schema["paths"][path][method]["parameters"] if p["name"] == name)


def test_model_is_an_enum_of_the_loaded_models_each_endpoint_can_use(schema):
    assert _param(schema, "/sample", "get", "model")["schema"]["enum"] == ["gan", "vae"]
    assert _param(schema, "/encode", "post", "model")["schema"]["enum"] == ["vae"]
    assert _param(schema, "/reconstruct", "post", "model")["schema"]["enum"] == ["vae"]
    assert _param(schema, "/interpolate", "get", "model")["schema"]["enum"] == ["gan", "vae"]
    assert _param(schema, "/models/{name}", "get", "name")["schema"]["enum"] == ["classifier", "gan", "vae"]
    decode = schema["components"]["schemas"]["DecodeRequest"]["properties"]
    assert decode["model"]["enum"] == ["gan", "vae"]


def test_the_schema_states_the_configured_limits(tiny_weights):
    with make_client(tiny_weights, max_samples=64, max_latents=32, max_steps=12, max_scale=4, max_dataset=500) as c:
        schema = c.get("/openapi.json").json()
    assert _param(schema, "/sample", "get", "n")["schema"]["maximum"] == 64
    assert _param(schema, "/dataset", "get", "n")["schema"]["maximum"] == 500
    assert _param(schema, "/sample", "get", "scale")["schema"]["maximum"] == 4
    assert _param(schema, "/interpolate", "get", "steps")["schema"]["maximum"] == 12
    decode = schema["components"]["schemas"]["DecodeRequest"]["properties"]
    assert decode["latents"]["maxItems"] == 32
    vector = decode["latents"]["items"]
    assert vector["minItems"] == vector["maxItems"] == 4  # the tiny models' latent size
    assert vector["items"]["maximum"] == 1000 and vector["items"]["minimum"] == -1000
    interpolate = schema["components"]["schemas"]["InterpolateRequest"]["properties"]
    assert interpolate["steps"]["maximum"] == 12


def test_every_parameter_has_a_description_and_an_example(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for p in operation.get("parameters", []):
                assert p.get("description"), (method, path, p["name"])
                assert "example" in p or "examples" in p["schema"], (method, path, p["name"])


def test_response_headers_are_declared_where_they_are_sent(schema):
    caching = {"ETag", "Cache-Control"}
    assert set(schema["paths"]["/sample"]["get"]["responses"]["200"]["headers"]) == {"X-Seed", "X-Model"} | caching
    assert set(schema["paths"]["/interpolate"]["get"]["responses"]["200"]["headers"]) == {
        "X-Seed-A", "X-Seed-B", "X-Model"} | caching
    assert set(schema["paths"]["/dataset"]["get"]["responses"]["200"]["headers"]) == {
        "X-Seed", "X-Model", "X-Label-Source", "X-Class-Shares", "X-Labels-Verified"} | caching
    assert "304" in schema["paths"]["/dataset"]["get"]["responses"]
    assert "headers" not in schema["paths"]["/decode"]["post"]["responses"]["200"] or \
        "ETag" not in schema["paths"]["/decode"]["post"]["responses"]["200"]["headers"]


def test_error_responses_are_listed_only_where_they_can_happen(schema):
    sample = schema["paths"]["/sample"]["get"]["responses"]
    assert "413" not in sample and "415" not in sample and "400" not in sample and "401" not in sample
    assert {"413", "415", "400"} <= set(schema["paths"]["/encode"]["post"]["responses"])
    assert set(schema["paths"]["/healthz"]["get"]["responses"]) == {"200"}
    body = schema["paths"]["/sample"]["get"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ErrorBody"}


def test_the_api_key_is_a_security_scheme_only_when_set(schema, tiny_weights):
    assert "securitySchemes" not in schema.get("components", {})
    with make_client(tiny_weights, api_key="k") as c:
        secured = c.get("/openapi.json").json()
    assert secured["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer", "description": "DIGITGEN_API_KEY, sent as `Authorization: Bearer <key>`"}
    assert secured["paths"]["/sample"]["get"]["security"] == [{"apiKey": []}]
    assert "401" in secured["paths"]["/sample"]["get"]["responses"]
    assert "security" not in secured["paths"]["/healthz"]["get"]


# ---- /docs offline, HEAD ------------------------------------------------------------------------

@pytest.mark.parametrize("page,asset", [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_docs_load_their_assets_from_the_service(client, page, asset):
    html = client.get(page).text
    assert f"/docs-static/{asset}" in html
    assert "cdn." not in html and "fonts.googleapis" not in html
    served = client.get(f"/docs-static/{asset}")
    assert served.status_code == 200 and len(served.content) > 100_000


def test_head_works_on_every_get_endpoint(client, schema):
    for path, item in schema["paths"].items():
        if "get" not in item:
            continue
        url = path.replace("{name}", "gan") + ("?seed=1" if path in ("/sample", "/dataset") else "")
        if path == "/interpolate":
            url += "?seed_a=1&seed_b=2"
        got, head = client.get(url), client.head(url)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"], path
        if path not in ("/metrics", "/dataset"):  # counters move between the two; /dataset streams
            assert head.headers["content-length"] == got.headers["content-length"], path


def test_a_png_upload_still_works_with_the_error_handlers_in_place(client):
    from PIL import Image
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 0).save(buffer, format="PNG")
    r = client.post("/encode", content=buffer.getvalue(), headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and len(r.json()["mu"]) == 4


def test_head_is_labelled_like_get_in_the_metrics(tiny_weights):
    with make_client(tiny_weights) as c:
        c.head("/sample?seed=1")
        c.head("/models")
        text = c.get("/metrics").text
    assert 'digitgen_requests_total{method="HEAD",model="gan",route="/sample",status="200"} 1.0' in text
    assert 'digitgen_requests_total{method="HEAD",model="-",route="/models",status="200"} 1.0' in text


def test_head_of_a_dataset_makes_no_images(client):
    def made() -> str:
        return next(line for line in client.get("/metrics").text.splitlines()
                    if line.startswith('digitgen_images_generated_total{model="gan"}'))

    client.get("/dataset?n=10&seed=1")  # the series exists from here on
    first = made()
    head = client.head("/dataset?n=5000&seed=2")
    assert head.status_code == 200 and head.headers["x-label-source"] and head.content == b""
    assert made() == first


def test_a_conditional_request_is_checked_before_it_is_answered_304(client):
    r = client.get("/interpolate?seed_a=1&seed_b=2&steps=100000", headers={"If-None-Match": "*"})
    assert_error(r, 422, "limit_exceeded")
