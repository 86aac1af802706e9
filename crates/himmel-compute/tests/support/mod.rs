//! A region with identity, networking and compute in-process on a random
//! port, for integration tests. SQLite, or PostgreSQL when HIMMEL_TEST_POSTGRES is set
//! and the test asks for it.

#![allow(dead_code)]

use std::sync::Arc;

use serde_json::Value;

#[allow(unused_imports)] // not every test binary names them all
pub use himmel_testkit::{Base, Engine, Member};

/// Images the tests boot: a raw disk, a kernel with a ramdisk, and one
/// that is not active (fixed ids, bootable by anyone, not listed); and
/// images a test adds (`add`), which the image proxy lists, shows, deletes
/// and changes under the image service's rules: the owner's project and
/// public images are visible, the owner's members change and delete, the
/// cloud administrator sees and does everything.
#[derive(Default)]
pub struct FakeImages {
    pub stored: std::sync::Mutex<Vec<FakeImage>>,
    /// What createImage and createBackup queued.
    pub created: std::sync::Mutex<Vec<Queued>>,
}

/// A queued image: (id, request, data once stored).
pub type Queued = (String, himmel_compute::images::NewImage, Option<Vec<u8>>);

#[derive(Debug, Clone)]
pub struct FakeImage {
    pub info: himmel_compute::images::ImageInfo,
    pub owner: String,
    pub public: bool,
    pub protected: bool,
}

impl FakeImages {
    /// Adds an image of `owner`'s project with a Glance `status`; returns
    /// its id. Each image is newer than the one added before.
    pub fn add(
        &self,
        owner: &str,
        name: &str,
        status: &str,
        public: bool,
        properties: &[(&str, &str)],
    ) -> String {
        let mut stored = self.stored.lock().unwrap();
        let now = chrono::Utc::now().timestamp_micros();
        let newest = stored.iter().map(|i| i.info.created_at).max().unwrap_or(0);
        let created = now.max(newest + 1);
        let id = uuid::Uuid::new_v4().to_string();
        stored.push(FakeImage {
            info: himmel_compute::images::ImageInfo {
                id: id.clone(),
                name: Some(name.to_string()),
                status: status.to_string(),
                size: (status == "active").then_some(1024),
                min_disk_gb: 0,
                min_ram_mb: 0,
                properties: properties
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                created_at: created,
                updated_at: created,
            },
            owner: owner.to_string(),
            public,
            protected: false,
        });
        id
    }

    pub fn get(&self, id: &str) -> Option<FakeImage> {
        let stored = self.stored.lock().unwrap();
        stored.iter().find(|i| i.info.id == id).cloned()
    }

    fn is_admin(ctx: &himmel_core::RequestContext) -> bool {
        ctx.has_role("admin")
    }

    fn visible(ctx: &himmel_core::RequestContext, i: &FakeImage) -> bool {
        Self::is_admin(ctx) || i.public || ctx.project_id() == Some(i.owner.as_str())
    }

    /// The image for a change: 404 unseen, 403 unless the caller is a
    /// member of its project or the administrator.
    fn changeable<'a>(
        ctx: &himmel_core::RequestContext,
        stored: &'a mut [FakeImage],
        id: &str,
    ) -> Result<&'a mut FakeImage, himmel_core::Error> {
        let image = stored
            .iter_mut()
            .find(|i| i.info.id == id && Self::visible(ctx, i))
            .ok_or_else(|| himmel_core::Error::NotFound(format!("No image found with ID {id}")))?;
        let member = ctx.project_id() == Some(image.owner.as_str()) && ctx.has_role("member");
        if !(member || Self::is_admin(ctx)) {
            return Err(himmel_core::Error::Forbidden(
                "You are not authorized to perform the requested action.".into(),
            ));
        }
        Ok(image)
    }
}

pub const DISK_IMAGE: &str = "11111111-1111-4111-8111-111111111111";
pub const KERNEL_IMAGE: &str = "22222222-2222-4222-8222-222222222222";
pub const RAMDISK_IMAGE: &str = "33333333-3333-4333-8333-333333333333";
pub const QUEUED_IMAGE: &str = "44444444-4444-4444-8444-444444444444";
pub const BIG_IMAGE: &str = "55555555-5555-4555-8555-555555555555";

#[async_trait::async_trait]
impl himmel_compute::images::Images for FakeImages {
    async fn image_for_boot(
        &self,
        _ctx: &himmel_core::RequestContext,
        image_id: &str,
    ) -> Result<himmel_compute::images::BootImage, himmel_core::Error> {
        let mut image = himmel_compute::images::BootImage {
            id: image_id.to_string(),
            name: Some("test".into()),
            disk_format: "raw".into(),
            container_format: "bare".into(),
            size: 4096,
            ..Default::default()
        };
        match image_id {
            DISK_IMAGE => {}
            KERNEL_IMAGE => {
                image.disk_format = "ami".into();
                image.kernel_id = Some(KERNEL_IMAGE.into());
                image.ramdisk_id = Some(RAMDISK_IMAGE.into());
            }
            BIG_IMAGE => image.min_ram_mb = 1 << 20,
            QUEUED_IMAGE => {
                return Err(himmel_core::Error::Conflict("Image is not active.".into()))
            }
            _ => return Err(himmel_core::Error::NotFound("no such image".into())),
        }
        Ok(image)
    }

    async fn copy_data_to(
        &self,
        image_id: &str,
        dest: &std::path::Path,
    ) -> Result<(), himmel_core::Error> {
        std::fs::write(dest, format!("data of {image_id}")).map_err(himmel_core::Error::internal)
    }

    async fn create_queued(
        &self,
        ctx: &himmel_core::RequestContext,
        req: himmel_compute::images::NewImage,
    ) -> Result<String, himmel_core::Error> {
        let properties: Vec<(&str, &str)> = req
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let owner = ctx.project_id().unwrap_or_default();
        let id = self.add(owner, &req.name, "queued", false, &properties);
        self.created.lock().unwrap().push((id.clone(), req, None));
        Ok(id)
    }

    async fn fill_from_file(
        &self,
        image_id: &str,
        src: &std::path::Path,
    ) -> Result<(), himmel_core::Error> {
        let data = std::fs::read(src).map_err(himmel_core::Error::internal)?;
        let mut stored = self.stored.lock().unwrap();
        let image = stored
            .iter_mut()
            .find(|i| i.info.id == image_id)
            .ok_or_else(|| himmel_core::Error::NotFound(format!("No image {image_id}")))?;
        image.info.status = "active".into();
        image.info.size = Some(data.len() as u64);
        let mut created = self.created.lock().unwrap();
        if let Some(entry) = created.iter_mut().find(|(id, _, _)| id == image_id) {
            entry.2 = Some(data);
        }
        Ok(())
    }

    async fn list_images(
        &self,
        ctx: &himmel_core::RequestContext,
    ) -> Result<Vec<himmel_compute::images::ImageInfo>, himmel_core::Error> {
        let stored = self.stored.lock().unwrap();
        let mut list: Vec<_> = stored
            .iter()
            .filter(|i| Self::visible(ctx, i))
            .map(|i| i.info.clone())
            .collect();
        list.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(list)
    }

    async fn show_image(
        &self,
        ctx: &himmel_core::RequestContext,
        image_id: &str,
    ) -> Result<himmel_compute::images::ImageInfo, himmel_core::Error> {
        let stored = self.stored.lock().unwrap();
        stored
            .iter()
            .find(|i| i.info.id == image_id && Self::visible(ctx, i))
            .map(|i| i.info.clone())
            .ok_or_else(|| {
                himmel_core::Error::NotFound(format!("No image found with ID {image_id}"))
            })
    }

    async fn delete_image(
        &self,
        ctx: &himmel_core::RequestContext,
        image_id: &str,
    ) -> Result<(), himmel_core::Error> {
        let mut stored = self.stored.lock().unwrap();
        let image = Self::changeable(ctx, &mut stored, image_id)?;
        if image.protected {
            return Err(himmel_core::Error::Forbidden(format!(
                "Image {image_id} is protected and cannot be deleted."
            )));
        }
        stored.retain(|i| i.info.id != image_id);
        Ok(())
    }

    async fn update_properties(
        &self,
        ctx: &himmel_core::RequestContext,
        image_id: &str,
        set: &std::collections::BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<himmel_compute::images::ImageInfo, himmel_core::Error> {
        let mut stored = self.stored.lock().unwrap();
        let image = Self::changeable(ctx, &mut stored, image_id)?;
        for k in remove {
            if !set.contains_key(k) {
                image.info.properties.remove(k);
            }
        }
        image.info.properties.extend(set.clone());
        image.info.updated_at = chrono::Utc::now()
            .timestamp_micros()
            .max(image.info.updated_at + 1);
        Ok(image.info.clone())
    }
}

/// A hypervisor that keeps its instances in memory. `fail_start` makes
/// the next starts fail (a host that cannot boot the guest).
#[derive(Default)]
pub struct FakeHost {
    pub instances: std::sync::Mutex<std::collections::BTreeMap<String, FakeInstance>>,
    pub fail_start: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone)]
pub struct FakeInstance {
    pub plan: Option<himmel_compute::host::InstancePlan>,
    pub running: bool,
    pub paused: bool,
    pub starts: u32,
}

impl FakeHost {
    pub fn instance(&self, id: &str) -> Option<FakeInstance> {
        self.instances.lock().unwrap().get(id).cloned()
    }
}

impl himmel_compute::host::Host for FakeHost {
    fn prepare(&self, id: &str) -> Result<(), String> {
        self.instances
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_insert(FakeInstance {
                plan: None,
                running: false,
                paused: false,
                starts: 0,
            });
        Ok(())
    }
    fn start(
        &self,
        plan: &himmel_compute::host::InstancePlan,
    ) -> Result<himmel_compute::host::HostStatus, String> {
        if self.fail_start.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("the guest could not boot".into());
        }
        let mut all = self.instances.lock().unwrap();
        let i = all.get_mut(&plan.id).ok_or("not prepared")?;
        if !i.running {
            i.starts += 1;
        }
        i.plan = Some(plan.clone());
        i.running = true;
        Ok(himmel_compute::host::HostStatus { running: true })
    }
    fn stop(&self, id: &str, _graceful: std::time::Duration) -> Result<(), String> {
        if let Some(i) = self.instances.lock().unwrap().get_mut(id) {
            i.running = false;
            i.paused = false;
        }
        Ok(())
    }
    fn reboot(
        &self,
        plan: &himmel_compute::host::InstancePlan,
        _hard: bool,
    ) -> Result<himmel_compute::host::HostStatus, String> {
        self.stop(&plan.id, std::time::Duration::ZERO)?;
        self.start(plan)
    }
    fn pause(&self, id: &str) -> Result<(), String> {
        let mut all = self.instances.lock().unwrap();
        all.get_mut(id).ok_or("no such instance")?.paused = true;
        Ok(())
    }
    fn unpause(&self, id: &str) -> Result<(), String> {
        let mut all = self.instances.lock().unwrap();
        all.get_mut(id).ok_or("no such instance")?.paused = false;
        Ok(())
    }
    fn status(&self, id: &str) -> Result<himmel_compute::host::HostStatus, String> {
        let running = self
            .instances
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|i| i.running);
        Ok(himmel_compute::host::HostStatus { running })
    }
    fn console_output(&self, id: &str, tail_lines: Option<usize>) -> Result<String, String> {
        let lines: Vec<String> = (1..=5)
            .map(|n| format!("console of {id} line {n}"))
            .collect();
        let keep = tail_lines.unwrap_or(lines.len()).min(lines.len());
        Ok(lines[lines.len() - keep..].join("\n"))
    }
    fn remove(&self, id: &str) -> Result<(), String> {
        self.instances.lock().unwrap().remove(id);
        Ok(())
    }
    fn list(&self) -> Result<Vec<String>, String> {
        Ok(self.instances.lock().unwrap().keys().cloned().collect())
    }
    /// A running namespace instance's "root filesystem" names it and its memory cap; it takes
    /// 32 MiB, so an instance with less memory cannot be packed.
    fn snapshot_rootfs(
        &self,
        id: &str,
        out: &std::path::Path,
        max_bytes: u64,
    ) -> Result<himmel_compute::host::RootfsSnapshot, String> {
        use himmel_compute::host::RootfsSnapshot;
        let all = self.instances.lock().unwrap();
        let live = all.get(id).filter(|i| {
            i.running
                && i.plan.as_ref().map(|p| p.driver)
                    == Some(himmel_compute::host::DriverKind::Namespace)
        });
        if live.is_none() {
            return Ok(RootfsSnapshot::NotRunning);
        }
        if max_bytes < 32 << 20 {
            return Ok(RootfsSnapshot::Refused(
                "the root filesystem is larger than the instance's memory".into(),
            ));
        }
        std::fs::write(out, format!("rootfs of {id} within {max_bytes}"))
            .map_err(|e| e.to_string())?;
        Ok(RootfsSnapshot::Packed)
    }
}

pub struct Region {
    base: Base,
    pub network: himmel_network::NetworkService,
    pub compute: himmel_compute::ComputeService,
    pub host: Arc<FakeHost>,
    pub images: Arc<FakeImages>,
    _dir: tempfile::TempDir,
}

/// The identity side (url, admin token, http client, members) is the shared test region's.
impl std::ops::Deref for Region {
    type Target = Base;
    fn deref(&self) -> &Base {
        &self.base
    }
}

impl Region {
    /// Starts a region on `engine`; `None` when PostgreSQL is not available.
    pub async fn start(engine: Engine) -> Option<Region> {
        let dir = tempfile::tempdir().unwrap();
        let db = himmel_testkit::open_db(engine, dir.path()).await?;
        let prepared =
            himmel_testkit::Prepared::new(&db, dir.path(), Arc::new(himmel_testkit::NullSink))
                .await;
        let network = himmel_network::NetworkService::new(db.clone());
        himmel_compute::bootstrap::seed_flavors(&db).await.unwrap();
        // The test host is a resource provider large enough for any test's servers.
        let big = |total: i64| himmel_compute::placement::store::Inventory {
            total,
            reserved: 0,
            min_unit: 1,
            max_unit: total,
            step_size: 1,
            allocation_ratio: 1.0,
        };
        let inventory = std::collections::BTreeMap::from([
            ("VCPU".to_string(), big(4096)),
            ("MEMORY_MB".to_string(), big(1 << 24)),
            ("DISK_GB".to_string(), big(1 << 20)),
        ]);
        himmel_compute::placement::register_host(&db, "testhost", &inventory)
            .await
            .unwrap();
        let host = Arc::new(FakeHost::default());
        let images = Arc::new(FakeImages::default());
        let compute = himmel_compute::ComputeService::new(
            db.clone(),
            network.clone(),
            himmel_compute::ComputeConfig {
                host: "testhost".into(),
                state_dir: dir.path().join("compute"),
            },
        )
        .with_images(images.clone())
        .with_hypervisor(host.clone());
        himmel_compute::reconcile::spawn(
            compute.clone(),
            himmel_compute::reconcile::ReconcileConfig {
                wait_for_ports: false,
                interval: std::time::Duration::from_millis(200),
                ..Default::default()
            },
        );
        let app = prepared
            .identity_routes()
            .merge(himmel_network::routes(&prepared.pipeline, network.clone()))
            .merge(himmel_compute::routes(&prepared.pipeline, compute.clone()));
        Some(Region {
            base: prepared.serve(app).await,
            network,
            compute,
            host,
            images,
            _dir: dir,
        })
    }

    /// Sends a compute request (path under `/compute/v2.1`); returns
    /// status and JSON body (Null if none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.raw(
            method,
            &format!("/compute/v2.1{path}"),
            token,
            body,
            headers,
        )
        .await
    }

    /// A request to the network API (path under `/networking/v2.0`).
    pub async fn net(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.raw(method, &format!("/networking/v2.0{path}"), token, body, &[])
            .await
    }

    /// A request to any path of the region.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.json_request(method, path, token, body, headers).await
    }
}

/// Runs `test` on SQLite, then on PostgreSQL when available.
#[macro_export]
macro_rules! on_both_engines {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let region = support::Region::start(support::Engine::Sqlite)
                    .await
                    .unwrap();
                ($body)(region).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(region) = support::Region::start(support::Engine::Postgres).await {
                    ($body)(region).await;
                }
            }
        }
    };
}

/// Waits (up to 20 s) until server `id` shows `want` with no task in
/// progress; returns the server body.
pub async fn wait_status(r: &Region, token: &str, id: &str, want: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, v) = r.call("GET", &format!("/servers/{id}"), token, None).await;
        assert_eq!(status, 200, "{v}");
        if v["server"]["status"] == want && v["server"]["OS-EXT-STS:task_state"].is_null() {
            return v["server"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server {id} never reached {want}: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A tenant network named `name` with one IPv4 subnet `cidr`, made by the
/// holder of `token`; returns the network's id.
pub async fn tenant_network(r: &Region, token: &str, name: &str, cidr: &str) -> String {
    let (status, net) = r
        .net(
            "POST",
            "/networks",
            token,
            Some(serde_json::json!({"network": {"name": name}})),
        )
        .await;
    assert_eq!(status, 201, "{net}");
    let id = net["network"]["id"].as_str().unwrap().to_string();
    let (status, sub) = r
        .net(
            "POST",
            "/subnets",
            token,
            Some(serde_json::json!({"subnet": {"network_id": id, "ip_version": 4, "cidr": cidr}})),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    id
}

/// A public flavor with a 1 GB disk, made by the administrator; returns its id.
pub async fn flavor(r: &Region, name: &str, vcpus: u32, ram: u64) -> String {
    let (status, v) = r
        .call(
            "POST",
            "/flavors",
            &r.admin,
            Some(serde_json::json!({"flavor": {"name": name, "ram": ram, "vcpus": vcpus, "disk": 1}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v["flavor"]["id"].as_str().unwrap().to_string()
}

/// Asserts a Nova error body: `{kind: {code, message}}` with a message
/// containing `text`.
pub fn nova_error(v: &Value, kind: &str, code: u16, text: &str) {
    assert_eq!(v[kind]["code"], code, "{v}");
    let msg = v[kind]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(text), "{text:?} not in {v}");
}
