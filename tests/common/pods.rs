//! Several chatbox processes ("pods") sharing one MongoDB (nx-27017) and one Redis, as
//! the Kubernetes deployment runs them with `REDIS_URL` set.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::mongo::MongoServer;
use super::redis_server::RedisServer;
use super::Server;

pub struct Cluster {
    pub mongo: MongoServer,
    pub redis: RedisServer,
    pub pods: Vec<Server>,
}

impl Cluster {
    /// `count` pods, each ready (MongoDB answered) and connected to Redis.
    pub fn start(count: usize) -> Cluster {
        Cluster::start_with(count, &[])
    }

    /// The same, each pod with `env` on top of the shared servers' settings.
    pub fn start_with(count: usize, env: &[(&str, &str)]) -> Cluster {
        let mongo = MongoServer::start();
        let redis = RedisServer::start();
        let pods: Vec<Server> = (0..count).map(|_| pod(&mongo, &redis, env)).collect();
        for pod in &pods {
            redis_check_becomes(pod, "ready");
        }
        Cluster { mongo, redis, pods }
    }
}

/// One pod on the shared servers, `/readyz` 200.
pub fn pod(mongo: &MongoServer, redis: &RedisServer, env: &[(&str, &str)]) -> Server {
    let mut vars = vec![
        ("MONGO_URI", mongo.uri()),
        ("MONGO_CONNECT_TIMEOUT", "1s".to_owned()),
        ("MONGO_RETRY_DELAY", "50ms".to_owned()),
        ("REDIS_URL", redis.url()),
    ];
    vars.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(&vars);
    readyz_becomes(&server, 200);
    server
}

/// Polls `/readyz` until its status is `want`, and returns its body.
pub fn readyz_becomes(server: &Server, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = server.get("/chatbox/readyz");
        if response.status == want {
            return response.json();
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {}",
            response.status
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `/readyz` until `checks.redis.status` is `want`; returns the whole body.
pub fn redis_check_becomes(server: &Server, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = server.get("/chatbox/readyz").json();
        if body["checks"]["redis"]["status"] == want {
            return body;
        }
        assert!(Instant::now() < deadline, "checks.redis stayed: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
