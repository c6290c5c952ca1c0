//! The web page in a real headless Chromium (Debian's chromium + chromium-driver): sign in, create
//! an instance with the form, image it (physical, chosen on the page) with its button, restore the
//! image with its button, see every state change on the page, schedule images of the instance with
//! the schedules form and delete the schedule, protect the instance and restore it to the latest
//! moment with the point-in-time form, and check a screenshot is not blank.

mod support;

use std::time::Duration;
use support::webdriver::{tools, Browser};
use support::{DataDir, Server, TOKEN};

const STEP: Duration = Duration::from_secs(180);

fn state_is(name_prefix: &str, table: &str, state: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#{table} tbody tr')].some(r => r.dataset.name.startsWith('{name_prefix}') \
         && r.querySelector('.state').textContent === '{state}')"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_images_an_instance_and_restores_the_image() {
    let Some((chromium, chromedriver)) = tools() else {
        eprintln!("skipped: chromium/chromedriver not installed (bash .ci/chromium.sh)");
        return;
    };
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();
    let browser = Browser::start(&chromium, &chromedriver).await;

    browser.goto(&server.url).await;
    browser.type_into("#token", TOKEN).await;
    browser.click("#sign-in-button").await;
    browser.wait_for("#new-instance", Duration::from_secs(20)).await;

    browser.type_into("#new-instance-name", "web-source").await;
    browser.type_into("#new-instance-password", "web-Pw-2c").await;
    browser.click("#new-instance-button").await;
    browser.wait_until("web-source running", &state_is("web-source", "instances", "running"), STEP).await;

    // A schedule of the instance, made with the form (its instance chosen by default), then deleted.
    browser.type_into("#new-schedule-name", "web-nightly").await;
    browser.type_into("#new-schedule-cron", "0 3 * * *").await;
    browser.click("#new-schedule-button").await;
    let shown = "return [...document.querySelectorAll('#schedules tbody tr')].some(r => r.dataset.name === 'web-nightly' \
                 && r.querySelector('.next-run').textContent.endsWith('T03:00:00Z') && r.textContent.includes('web-source'))";
    browser.wait_until("the schedule listed with its next run", shown, Duration::from_secs(20)).await;
    let schedules = api.get("/api/schedules").await.body;
    let instances = api.get("/api/instances").await.body;
    assert_eq!(schedules["items"][0]["instance_id"], instances["items"][0]["id"], "{schedules}");
    assert_eq!(schedules["items"][0]["keep_last"], 7, "{schedules}");
    browser.click("tr[data-name='web-nightly'] button.delete-schedule").await;
    let gone = "return document.querySelectorAll('#schedules tbody tr').length === 0";
    browser.wait_until("the schedule deleted", gone, Duration::from_secs(20)).await;
    assert_eq!(api.get("/api/schedules").await.body["items"], serde_json::json!([]));

    assert_eq!(browser.eval("return document.querySelector('#image-format').value").await, "logical");
    browser.click("#image-format option[value='physical']").await;
    browser.click("tr[data-name='web-source'] button.image-button").await;
    browser.wait_until("an image of web-source ready", &state_is("web-source-", "images", "ready"), STEP).await;
    let images = api.get("/api/images").await.body;
    let image = &images["items"][0];
    let instances = api.get("/api/instances").await.body;
    assert_eq!(image["source_instance_id"], instances["items"][0]["id"], "{images}");
    assert_eq!(image["format"], "physical", "the page's format choice did not reach the request: {images}");
    let shown = browser.eval("return document.querySelector('#images tbody tr').children[2].textContent").await;
    assert_eq!(shown, "physical", "the images table does not show the format");
    let key = image["encryption"]["key_id"].as_str().expect("images are encrypted by default");
    let shown = browser.eval("return document.querySelector('#images tbody tr').children[5].textContent").await;
    assert_eq!(shown, format!("local {key}"), "the images table does not show the image's key");

    browser.click("#images button.restore-button").await;
    browser.wait_until("the restored instance running", &state_is("web-source-", "instances", "running"), STEP).await;
    let copies = browser
        .eval("return [...document.querySelectorAll('#instances tbody tr')].filter(r => r.dataset.name.includes('-copy')).length")
        .await;
    assert_eq!(copies, 1, "the restored instance is not on the page");
    let instances = api.get("/api/instances").await.body;
    let restored =
        instances["items"].as_array().unwrap().iter().find(|i| i["source_image_id"] == image["id"]).expect("restored");
    assert_eq!(restored["state"], "running");

    // Point-in-time restore, of the restored copy (no image of its own yet): the Protect button
    // starts archiving and a base image; the row then shows the restorable window, and the
    // "restore to a time" form (empty time: the latest moment) posts a point-in-time restore.
    let copy = "[...document.querySelectorAll('#instances tbody tr')].find(r => r.dataset.name.includes('-copy'))";
    let copy_name = browser.eval(&format!("return {copy}.dataset.name")).await;
    let copy_name = copy_name.as_str().unwrap();
    browser.click(&format!("tr[data-name='{copy_name}'] button.protect-button")).await;
    let window = format!(
        "const r = {copy}; return !!r.querySelector('.protected') && r.querySelector('.window').textContent.includes('RPO') \
         && r.querySelector('.window').textContent.includes('–')"
    );
    browser.wait_until("the copy protected with a restorable window", &window, STEP).await;
    browser.type_into("#pitr-name", "web-copy-pitr").await;
    browser.click("#pitr-button").await;
    let listed =
        "return [...document.querySelectorAll('#instances tbody tr')].some(r => r.dataset.name === 'web-copy-pitr')";
    browser.wait_until("the point-in-time restore listed", listed, Duration::from_secs(30)).await;
    // Settled (running, or failed where the executor cannot replay WAL) before the clean-up.
    let pitr = api.settle("/api/instances/web-copy-pitr", "provisioning", STEP).await;
    assert_eq!(pitr["recovery"]["source_instance_id"], restored["id"], "{pitr}");
    let instances = api.get("/api/instances").await.body;

    let png = browser.screenshot().await;
    assert_not_blank(&png);
    if let Ok(path) = std::env::var("TOYGRES_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }
    browser.close().await;

    for instance in instances["items"].as_array().unwrap() {
        assert_eq!(api.delete(&format!("/api/instances/{}", instance["id"].as_str().unwrap())).await.status, 204);
    }
    assert_eq!(api.delete(&format!("/api/images/{}", image["id"].as_str().unwrap())).await.status, 204);
}

/// Decodes the PNG and requires real content: many distinct colours and luminance variance.
fn assert_not_blank(png_bytes: &[u8]) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(info.width >= 800 && info.height >= 600, "screenshot is {}x{}", info.width, info.height);
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let luma: Vec<f64> =
        pixels.iter().map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64).collect();
    let mean = luma.iter().sum::<f64>() / luma.len() as f64;
    let variance = luma.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / luma.len() as f64;
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    assert!(variance > 100.0, "screenshot looks blank: luminance variance {variance:.1}");
    assert!(colours.len() > 50, "screenshot looks blank: {} colours", colours.len());
}
