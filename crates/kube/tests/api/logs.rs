use futures::TryStreamExt;

use crate::fixtures::*;
use crate::scenario::Scenario;

#[tokio::test]
async fn container_log_is_followed_line_by_line() {
    let (client, server) = Scenario::new()
        .get(&format!("{}/log", pod_path(&pod_name(1))))
        .query("container=app&follow=true&tailLines=0")
        .reply_text(200, "listening on :8080\nGET /health 200\n")
        .start();

    let lines = aro_kube::logs::follow(client, NAMESPACE, &pod_name(1), "app")
        .await
        .expect("the log stream opens");
    let lines: Vec<String> = lines.try_collect().await.expect("the log stream reads");
    server.verify().await;

    assert_eq!(lines, vec!["listening on :8080", "GET /health 200"]);
}
