//! Every answer of a real `toygres serve`, signed in or not, tells the browser to run only the
//! page's own files (a strict Content-Security-Policy), never to frame it, never to sniff types;
//! the sign-in page works under that policy (its script and style are files anyone may fetch,
//! nothing else is).

mod support;

use support::{DataDir, Server, TOKEN};

fn assert_hardened(response: &reqwest::Response, what: &str) {
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let csp = header("content-security-policy");
    for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{what}: CSP {csp:?} lacks {directive}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_a_strict_policy_and_the_sign_in_page_needs_no_inline_code() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let http = reqwest::Client::new();
    let get = |path: &str, token: bool| {
        let request = http.get(format!("{}{path}", server.url)).header("accept", "text/html");
        if token {
            request.bearer_auth(TOKEN)
        } else {
            request
        }
    };

    let page = get("/", true).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_hardened(&page, "the page");
    let sign_in = get("/", false).send().await.unwrap();
    assert_eq!(sign_in.status(), 401);
    assert_hardened(&sign_in, "the sign-in page");
    let html = sign_in.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("<style>"), "inline code the policy would block: {html}");
    for asset in ["/sign-in.js", "/sign-in.css"] {
        let answer = get(asset, false).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{asset}");
        assert_hardened(&answer, asset);
    }
    for private in ["/app.js", "/api/instances"] {
        let answer = http.get(format!("{}{private}", server.url)).send().await.unwrap();
        assert_eq!(answer.status(), 401, "{private} without the token");
        assert_hardened(&answer, private);
    }
}
