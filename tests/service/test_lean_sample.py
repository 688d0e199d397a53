"""The lean GET /sample path (service/routes/sample.py: LeanSample) answers exactly as the FastAPI route does, and
hands everything it does not fully understand to the route."""
import pytest

from service.routes.sample import LeanSample
from tests.conftest import make_client

# what a client can see, apart from the date; X-Seed only where the request names the seed
COMPARED_HEADERS = ("content-type", "content-length", "x-model", "x-seed", "etag", "cache-control")

SUCCEEDING = [
    "model=gan&seed=1", "model=gan&seed=1&scale=3", "model=vae&seed=2&n=10&nrow=5&scale=2",
    "model=gan&seed=3&n=64", "model=gan&seed=4&n=50&format=npy", "model=vae&seed=5&n=300&format=npy",
    "seed=6", "model=gan&seed=9223372036854775807&n=2&nrow=1", "model=g%61n&seed=7",  # percent-decoded
    "model=gan&seed=8&format=png&n=1&nrow=8&scale=1",
    # what pydantic's lax integers accept, through the same SampleQuery on both paths
    "n=%2B2&seed=1", "n=2.0&seed=1",
]
HANDED_ON = [  # errors and the forms the fast path leaves to FastAPI; both apps must agree on them too
    "model=gan&seed=1&format=json", "model=gan&seed=1&digit=3&n=2", "model=nope&seed=1", "model=classifier&seed=1",
    "model=&seed=1", "n=0&seed=1", "n=abc&seed=1", "n=-1&seed=1", "n=2.5&seed=1", "n=&seed=1",
    "seed=-5", "seed=9223372036854775808", "seed=99999999999999999999", "scale=0&seed=1", "scale=17&seed=1",
    "nrow=0&seed=1", "nrow=1025&seed=1", "format=bmp&seed=1", "n=4097&seed=1", "n=2&n=3&seed=1",
    "seed=1&unknown=1", "n=4096&scale=16&seed=1", "model=gan&seed=%FF", "seed=1&n=%EF%BC%91",
]


@pytest.fixture(scope="module")
def both(tiny_weights):
    with make_client(tiny_weights) as fast, make_client(tiny_weights, fast_path=False) as slow:
        yield fast, slow


def _seen(response) -> tuple:
    return response.status_code, {h: response.headers.get(h) for h in COMPARED_HEADERS}, response.content


@pytest.mark.parametrize("query", SUCCEEDING + HANDED_ON)
def test_same_answer_with_and_without_the_fast_path(both, query):
    fast, slow = both
    a, b = fast.get(f"/sample?{query}"), slow.get(f"/sample?{query}")
    if "format=json" in query:  # the JSON carries a float confidence; compare the parsed body
        assert a.status_code == b.status_code == 200 and a.json() == b.json()
        return
    assert _seen(a) == _seen(b)


def test_the_fast_path_answers_the_common_requests_and_hands_on_the_rest(both, monkeypatch):
    answered = []
    original = LeanSample._answer

    async def spy(self, scope, send, *plan):
        answered.append(scope["query_string"])
        await original(self, scope, send, *plan)

    monkeypatch.setattr(LeanSample, "_answer", spy)
    fast, _ = both
    for query in SUCCEEDING:
        assert fast.get(f"/sample?{query}").status_code == 200
    for query in HANDED_ON:
        fast.get(f"/sample?{query}")
    assert answered == [q.encode() for q in SUCCEEDING]


def test_random_seed_is_returned_and_replays(both):
    fast, slow = both
    first = fast.get("/sample?model=gan&n=3")
    seed = first.headers["x-seed"]
    assert first.status_code == 200 and int(seed) >= 0
    assert slow.get(f"/sample?model=gan&n=3&seed={seed}").content == first.content


def test_metrics_label_fast_path_requests_like_the_route(tiny_weights):
    with make_client(tiny_weights) as c:
        c.get("/sample?model=gan&seed=1")
        c.get("/sample?model=gan&seed=1&n=5&format=npy")
        text = c.get("/metrics").text
    assert 'digitgen_requests_total{method="GET",model="gan",route="/sample",status="200"} 2.0' in text
    assert 'digitgen_images_generated_total{model="gan"} 6.0' in text


def test_api_key_is_enforced_on_the_fast_path(tiny_weights):
    with make_client(tiny_weights, api_key="s3cret") as c:
        refused = c.get("/sample?model=gan&seed=1")
        wrong = c.get("/sample?model=gan&seed=1", headers={"Authorization": "Bearer nope"})
        ok = c.get("/sample?model=gan&seed=1", headers={"Authorization": "Bearer s3cret"})
        # the first of two Authorization headers counts, on both paths, even when it is empty
        first = c.get("/sample?model=gan&seed=1", headers=[("Authorization", ""), ("Authorization", "Bearer s3cret")])
    assert refused.status_code == wrong.status_code == first.status_code == 401
    assert refused.json()["detail"].startswith("missing or wrong API key")
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"


def test_cors_headers_wrap_the_fast_path(tiny_weights):
    with make_client(tiny_weights, cors_origins=["https://app.example"]) as c:
        r = c.get("/sample?model=gan&seed=1", headers={"Origin": "https://app.example"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-seed" in r.headers["access-control-expose-headers"].lower()


def test_a_failure_on_the_fast_path_is_a_json_500_and_the_service_goes_on(tiny_weights, monkeypatch):
    from service.inference import Inference
    original = Inference.generate
    calls = []

    async def failing_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated forward failure")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Inference, "generate", failing_once)
    with make_client(tiny_weights) as c:
        failed = c.get("/sample?model=gan&seed=1")
        after = c.get("/sample?model=gan&seed=1")
        metrics = c.get("/metrics").text
    assert failed.status_code == 500
    assert failed.json() == {"detail": "internal server error", "code": "internal_error", "errors": []}
    assert "Traceback" not in failed.text and "simulated" not in failed.text
    assert after.status_code == 200 and after.headers["content-type"] == "image/png"
    assert 'digitgen_requests_total{method="GET",model="gan",route="/sample",status="500"} 1.0' in metrics
