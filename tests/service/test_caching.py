"""Seeded answers are cacheable forever (strong ETag, immutable); unseeded ones are not stored."""
import pytest

from tests.conftest import make_client

SEEDED = ["/sample?seed=5", "/sample?seed=5&n=4&format=npy", "/sample?model=vae&seed=5&n=9&scale=2",
          "/dataset?seed=5&n=20", "/interpolate?seed_a=1&seed_b=2&steps=4"]


@pytest.mark.parametrize("url", SEEDED)
def test_a_seeded_answer_has_a_strong_etag_and_is_immutable(client, url):
    first = client.get(url)
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('"') and not tag.startswith("W/")
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = client.get(url)
    assert again.headers["etag"] == tag and again.content == first.content
    cached = client.get(url, headers={"If-None-Match": tag})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == tag
    assert client.get(url, headers={"If-None-Match": '"other", ' + tag}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize("url", ["/sample", "/sample?n=4&format=npy", "/dataset?n=5", "/interpolate?seed_a=1"])
def test_an_unseeded_answer_is_not_stored(client, url):
    response = client.get(url)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert "etag" not in response.headers


def test_the_tag_follows_the_normalised_parameters(client):
    tag = lambda url: client.get(url).headers["etag"]  # noqa: E731
    assert tag("/sample?seed=5") == tag("/sample?seed=5&n=1&model=gan&format=png&nrow=8&scale=1")
    assert tag("/sample?seed=5") != tag("/sample?seed=6") != tag("/sample?seed=5&scale=2")
    assert tag("/dataset?seed=1&n=5") != tag("/dataset?seed=1&n=5&offset=1")
    assert tag("/sample?seed=5&format=npy") != tag("/sample?seed=5&format=png")


def test_new_weights_change_every_tag(tmp_path):
    from tests.conftest import write_tiny_weights
    with make_client(write_tiny_weights(tmp_path / "a", seed=0)) as a, \
            make_client(write_tiny_weights(tmp_path / "b", seed=1)) as b:
        assert a.get("/sample?seed=5").headers["etag"] != b.get("/sample?seed=5").headers["etag"]


def test_with_an_api_key_the_answers_are_private(tiny_weights):
    with make_client(tiny_weights, api_key="k") as c:
        r = c.get("/sample?seed=5", headers={"Authorization": "Bearer k"})
    assert r.headers["cache-control"] == "private, max-age=31536000, immutable"
