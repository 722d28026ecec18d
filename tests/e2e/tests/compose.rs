//! The quick start of `docker-compose.yml` on the local Docker engine: NATS, the detector, the
//! brain and the deployer in containers, the deployer running the demo fleet as containers. A
//! kill injected from the host through the Chaos API must come back as a RECOVERED outcome on
//! the audit trail. Needs the images of `make images` (`make test` builds them first).

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};
use std::time::Duration;

use aro_e2e::{assert_single_recovery, root};
use aro_proto::v1;
use aro_proto::v1::chaos_client::ChaosClient;
use aro_proto::v1::deployer_client::DeployerClient;
use aro_stack::audit::Audited;
use aro_stack::timeline::{Timeline, Tracker};
use futures::StreamExt;
use tonic::transport::Channel;

const IMAGES: [&str; 5] = [
    "aro-nats",
    "aro-detector",
    "aro-brain",
    "aro-deployer",
    "aro-sample-workload",
];

/// Time the containers have to start and the fleet to serve.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Time from the injection to the verified recovery.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Label the deployer's Docker runtime gives every container with its replica name.
const REPLICA_LABEL: &str = "io.aro.replica";

/// A compose project of this test, taken down with its volumes when dropped.
struct Project {
    /// `docker compose` or `docker-compose`, whichever is installed.
    program: Vec<&'static str>,
    name: String,
    env: Vec<(&'static str, String)>,
    ports: Ports,
    down: bool,
}

/// Host ports of the project, all on 127.0.0.1.
#[derive(Clone, Copy, Debug)]
struct Ports {
    nats: u16,
    deployer: u16,
}

impl Project {
    fn new() -> Self {
        let program = compose_program();
        let name = format!("aro-e2e-compose-{}", std::process::id());
        let ports = Ports {
            nats: aro_stack::free_port(),
            deployer: aro_stack::free_port(),
        };
        let docker_gid = std::fs::metadata("/var/run/docker.sock")
            .expect("/var/run/docker.sock exists: the test needs the local Docker engine")
            .gid();
        let env = vec![
            ("ARO_IMAGE_TAG", image_tag()),
            ("ARO_FLEET", name.clone()),
            ("ARO_DOCKER_GID", docker_gid.to_string()),
            ("ARO_NATS_PORT", ports.nats.to_string()),
            ("ARO_DEPLOYER_PORT", ports.deployer.to_string()),
            ("ARO_DETECTOR_PORT", aro_stack::free_port().to_string()),
            ("ARO_BRAIN_PORT", aro_stack::free_port().to_string()),
            (
                "ARO_DETECTOR_METRICS_PORT",
                aro_stack::free_port().to_string(),
            ),
            ("ARO_BRAIN_METRICS_PORT", aro_stack::free_port().to_string()),
            (
                "ARO_DEPLOYER_METRICS_PORT",
                aro_stack::free_port().to_string(),
            ),
        ];
        Self {
            program,
            name,
            env,
            ports,
            down: false,
        }
    }

    /// Runs the compose program with `args` in the repository root.
    fn run(&self, args: &[&str]) -> Output {
        let (program, first) = self.program.split_first().expect("a program name");
        let mut command = Command::new(program);
        command
            .args(first)
            .args(["--project-name", &self.name, "--file", "docker-compose.yml"])
            .args(args)
            .current_dir(root())
            .envs(self.env.iter().map(|(key, value)| (key, value)));
        command
            .output()
            .unwrap_or_else(|error| panic!("failed to run {}: {error}", self.program.join(" ")))
    }

    fn up(&self) {
        let output = self.run(&["up", "--detach"]);
        assert!(
            output.status.success(),
            "{} up failed: {}",
            self.program.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stops and removes the project's containers, network and volumes, and returns what
    /// failed, with the workload containers the deployer left behind.
    fn down(&mut self) -> Vec<String> {
        self.down = true;
        let mut problems = Vec::new();
        let output = self.run(&["down", "--volumes", "--remove-orphans", "--timeout", "30"]);
        if !output.status.success() {
            problems.push(format!(
                "down failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        // The deployer removes its containers when it stops. Any it left are removed here by
        // their replica label, so the next run starts clean, and still count as a failure.
        let left = docker(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label={REPLICA_LABEL}={}-deployer", self.name),
        ]);
        let left: Vec<&str> = left.split_whitespace().collect();
        if !left.is_empty() {
            problems.push(format!("the deployer left containers {left:?}"));
            let mut remove = vec!["rm", "--force", "--volumes"];
            remove.extend(&left);
            docker(&remove);
            docker(&["network", "rm", &self.name]);
        }
        problems
    }

    /// Prints the last lines of every service's log, for a failed test.
    fn print_logs(&self) {
        let output = self.run(&["logs", "--no-color", "--tail", "60"]);
        eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if self.down {
            return;
        }
        if std::thread::panicking() {
            self.print_logs();
        }
        for problem in self.down() {
            eprintln!("{}: {problem}", self.name);
        }
    }
}

/// `docker compose` when the Compose plugin is installed, otherwise `docker-compose`.
fn compose_program() -> Vec<&'static str> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if works("docker", &["compose", "version"]) {
        vec!["docker", "compose"]
    } else if works("docker-compose", &["version"]) {
        vec!["docker-compose"]
    } else {
        panic!("neither `docker compose` nor `docker-compose` is installed");
    }
}

/// Runs `docker` with `args` and returns its standard output.
fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("failed to run docker {args:?}: {error}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Tag of the images, as `make images` sets it.
fn image_tag() -> String {
    std::env::var("ARO_IMAGE_TAG").unwrap_or_else(|_| "dev".to_owned())
}

/// Fails with what to run when an image of the project is missing.
fn assert_images_exist() {
    let tag = image_tag();
    let missing: Vec<String> = IMAGES
        .iter()
        .map(|image| format!("{image}:{tag}"))
        .filter(|image| {
            !Command::new("docker")
                .args(["image", "inspect", "--format", "{{.Id}}", image])
                .output()
                .is_ok_and(|output| output.status.success())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "images {missing:?} are missing: run `make images` (or `ARO_PROFILE=debug \
         scripts/build-images.sh`, which `make test` runs) first"
    );
}

/// Connects to the deployer's gRPC port on the host, retrying while its container starts.
async fn connect_deployer(port: u16) -> Channel {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("a loopback address forms a valid URI");
    loop {
        match endpoint.connect().await {
            Ok(channel) => return channel,
            Err(error) if tokio::time::Instant::now() > deadline => {
                panic!("the deployer did not accept gRPC connections on 127.0.0.1:{port}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Waits until every workload has its desired number of serving instances.
async fn wait_until_serving(deployer: &mut DeployerClient<Channel>) -> Vec<v1::WorkloadStatus> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match deployer.list_workloads(v1::ListWorkloadsRequest {}).await {
            Ok(response) => {
                let workloads = response.into_inner().workloads;
                let serving = |workload: &v1::WorkloadStatus| {
                    workload
                        .instances
                        .iter()
                        .filter(|instance| instance.state() == v1::InstanceState::Serving)
                        .count()
                };
                if !workloads.is_empty()
                    && workloads
                        .iter()
                        .all(|workload| serving(workload) >= workload.replicas as usize)
                {
                    return workloads;
                }
                last = workloads
                    .iter()
                    .map(|workload| {
                        format!(
                            "{} {}/{} serving",
                            workload.name,
                            serving(workload),
                            workload.replicas
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
            }
            Err(status) => last = status.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the fleet did not serve within {START_TIMEOUT:?}: {last}");
}

/// Follows the audit trail through the published NATS port until the incident of
/// `injection_id` is recovered or escalated, then reads one more second of events so that late
/// duplicates would show.
async fn follow_injection(bus: &aro_bus::Bus, injection_id: &str) -> Timeline {
    let mut audit = aro_stack::audit::follow(bus, true, false)
        .await
        .expect("the audited streams exist once the services run");
    let mut tracker = Tracker::default();
    let chaos_id = format!("chaos-{injection_id}-injected");
    let deadline = tokio::time::Instant::now() + RECOVERY_TIMEOUT;
    let finished = loop {
        let timeline = tracker
            .timelines()
            .into_iter()
            .find(|timeline| timeline.chaos.id == chaos_id);
        if let Some(timeline) = timeline.filter(Timeline::finished) {
            break timeline;
        }
        match tokio::time::timeout_at(deadline, audit.next()).await {
            Ok(Some(Audited { event, .. })) => tracker.observe(&event),
            Ok(None) => panic!("the audit trail ended before injection {injection_id} finished"),
            Err(_) => panic!(
                "injection {injection_id} was not recovered within {RECOVERY_TIMEOUT:?}: {:#?}",
                tracker.timelines()
            ),
        }
    };
    let settle = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(audited)) = tokio::time::timeout_at(settle, audit.next()).await {
        tracker.observe(&audited.event);
    }
    tracker.timeline(&finished.chaos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_fleet_recovers_a_kill() {
    assert_images_exist();
    let mut project = Project::new();
    project.up();

    let channel = connect_deployer(project.ports.deployer).await;
    let mut deployer = DeployerClient::new(channel.clone());
    let mut chaos = ChaosClient::new(channel);
    let workloads = wait_until_serving(&mut deployer).await;
    let beat = workloads
        .iter()
        .find(|workload| workload.name == "beat")
        .expect("deploy/compose/fleet.toml declares the beat workload");
    assert_eq!(beat.replicas, 3);

    let nats_url = format!("nats://127.0.0.1:{}", project.ports.nats);
    let bus = aro_bus::Bus::connect(&nats_url, "aro-e2e-compose")
        .await
        .unwrap_or_else(|error| panic!("connecting to NATS at {nats_url} failed: {error}"));
    let request = v1::InjectFaultRequest {
        kind: v1::ChaosKind::Kill as i32,
        selector: Some(v1::TargetSelector {
            workload: "beat".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let injection = chaos
        .inject_fault(request)
        .await
        .expect("the Chaos API of the deployer container injects")
        .into_inner()
        .injection
        .expect("InjectFault returns the injection");
    let timeline = follow_injection(&bus, &injection.id).await;

    assert_single_recovery(&timeline);
    let fault = timeline.fault.as_ref().expect("a fault was detected");
    assert_eq!(fault.kind(), v1::FaultKind::Crash);
    let workloads = wait_until_serving(&mut deployer).await;
    assert!(workloads.iter().any(|workload| workload.name == "beat"));

    let problems = project.down();
    assert!(problems.is_empty(), "{problems:#?}");
}
