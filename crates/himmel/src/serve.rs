//! `himmel serve`: start a region.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use himmel_http::Pipeline;
use himmel_identity::Identity;

use crate::config::Settings;

/// Keystone's default `max_request_body_size`.
const MAX_BODY: usize = 114_688;

pub fn fernet_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("fernet-keys")
}

pub async fn run(s: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("creating data dir {}", s.data_dir.display()))?;
    restrict(&s.data_dir, 0o700)?;
    let db = himmel_db::Db::connect(&s.database).await?;
    let identity = Identity::open(
        db.clone(),
        himmel_identity::Config {
            token_expiration: s.token_expiration,
            fernet_dir: fernet_dir(&s.data_dir),
            max_active_keys: 3,
            credential_key_dir: s.data_dir.join("credential-keys"),
            security: s.security.clone(),
            region: s.region.clone(),
        },
    )
    .await?;
    let identity_url = format!("{}/v3", s.public_url);
    let created = himmel_identity::bootstrap::Bootstrap {
        region: &s.region,
        identity_url: &identity_url,
    }
    .run(&db)
    .await?;
    if let Some(password) = &created.admin_password {
        write_clouds_yaml(&s, &identity_url, password)?;
        // The password goes only to clouds.yaml (mode 0600), never to the output: a service's
        // output ends up in logs that others may read.
        println!(
            "bootstrapped region {}: the admin's credentials are in {} (readable by this user only)",
            s.region,
            s.data_dir.join("clouds.yaml").display()
        );
    }

    let network = himmel_network::NetworkService::new(db.clone());
    register_network_endpoint(&db, &s).await?;
    spawn_dataplane(&s, &network);

    let retention = std::time::Duration::from_secs(u64::from(s.audit_retention_days) * 86_400);
    let audit =
        himmel_audit::admin::start_for_region(db.clone(), &s.data_dir, &s.region, retention)
            .await?;
    let keyring = himmel_kms::Keyring::new(
        db.clone(),
        s.root_key.open()?,
        s.root_key.cache_ttl(),
        Some(Arc::new(audit.clone())),
    );
    keyring.verify_root().await?;
    tracing::info!(root_key = %keyring.root().describe(), "key hierarchy ready");
    spawn_project_key_shredder(keyring.clone());
    crate::control::spawn(&s.data_dir, keyring.clone())?;
    register_key_manager(&db, &s).await?;
    let key_manager = himmel_kms::KeyManager::new(db.clone(), keyring.clone());
    let s3 = start_s3(&s, &db, &identity, &keyring, &audit).await?;
    let images = himmel_image::ImageService::open(
        db.clone(),
        keyring.clone(),
        &s.data_dir,
        himmel_image::DEFAULT_MAX_IMAGE_SIZE,
    )
    .await?;
    register_image_endpoint(&db, &s).await?;
    let compute = start_compute(&s, &db, &network, &images).await?;
    let pipeline = Pipeline::new(Arc::new(identity.clone()), Arc::new(audit.clone()));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(himmel_audit::routes(&pipeline, audit.clone()))
        .merge(himmel_identity::routes(&pipeline, identity.clone()))
        .merge(himmel_network::routes(&pipeline, network.clone()))
        .merge(himmel_compute::routes(&pipeline, compute))
        .merge(himmel_kms::api::routes(&pipeline, key_manager))
        .merge(himmel_image::routes(&pipeline, images.clone()))
        .fallback(|| async { himmel_http::pipeline::not_found(himmel_http::ErrorFormat::Keystone) })
        .layer(DefaultBodyLimit::max(MAX_BODY));

    spawn_key_reloader(identity.clone());
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .with_context(|| format!("binding {}", s.listen))?;
    println!(
        "himmel listening on {} (region {})",
        listener.local_addr()?,
        s.region
    );
    std::io::stdout().flush().ok();
    let (stop_s3, s3_stopped) = tokio::sync::watch::channel(false);
    let s3_server = tokio::spawn(async move {
        // Small objects are answered in a few writes; without NODELAY,
        // Nagle and the client's delayed ACK add tens of ms to each.
        use axum::serve::ListenerExt;
        let listener = s3.0.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(
            listener,
            s3.1.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let mut stopped = s3_stopped;
            let _ = stopped.wait_for(|v| *v).await;
        })
        .await
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    let _ = stop_s3.send(true);
    s3_server.await??;
    // No key operation can arrive any more; then everything answered is in
    // the trail: seal its head with a checkpoint.
    let _ = std::fs::remove_file(crate::control::socket_path(&s.data_dir));
    audit.shutdown().await?;
    tracing::info!("drained, exiting");
    Ok(())
}

/// Where the dataplane keeps its runtime files (dnsmasq configurations, hosts files, pids):
/// `/run/himmel-<prefix>`, directly under /run so that no parent of ours needs opening up.
const DATAPLANE_RUNTIME_DIR: &str = "/run/himmel-";

/// The reconciler that drives this host's network dataplane from the store (it stays off,
/// saying why, when the host cannot run it).
fn spawn_dataplane(s: &Settings, network: &himmel_network::NetworkService) {
    if !s.dataplane.enabled {
        tracing::info!("network dataplane off: disabled by configuration");
        return;
    }
    himmel_network::reconcile::spawn(
        network.clone(),
        himmel_network::reconcile::ReconcileConfig {
            prefix: s.dataplane.prefix.clone(),
            // dnsmasq re-reads its hosts files after dropping to an unprivileged user, which
            // cannot enter the data dir (0700); this state mirrors the kernel's and is rebuilt
            // from the store, so it lives beside the namespaces in /run.
            state_dir: format!("{DATAPLANE_RUNTIME_DIR}{}", s.dataplane.prefix).into(),
            host: s.dataplane.host_name.clone(),
            external_interface: s.dataplane.external_interface.clone(),
            interval: std::time::Duration::from_secs(10),
        },
    );
}

/// The catalog entry of the networking API (idempotent, so a changed
/// public URL is picked up on restart).
async fn register_network_endpoint(db: &himmel_db::Db, s: &Settings) -> anyhow::Result<()> {
    let url = format!("{}{}", s.public_url, himmel_network::PATH_PREFIX);
    let mut tx = db.begin_write().await?;
    himmel_identity::bootstrap::ensure_service(&mut tx, "network", "neutron", &s.region, &url)
        .await
        .map_err(|e| anyhow::anyhow!("registering the network endpoint: {e}"))?;
    tx.commit().await?;
    Ok(())
}

/// The compute service: its standard flavors, its and placement's catalog
/// entries, this host as a resource provider, and the reconciler that runs
/// this host's instances.
async fn start_compute(
    s: &Settings,
    db: &himmel_db::Db,
    network: &himmel_network::NetworkService,
    images: &himmel_image::ImageService,
) -> anyhow::Result<himmel_compute::ComputeService> {
    himmel_compute::bootstrap::seed_flavors(db)
        .await
        .map_err(|e| anyhow::anyhow!("seeding the standard flavors: {e}"))?;
    let url = format!("{}{}/v2.1", s.public_url, himmel_compute::PATH_PREFIX);
    let mut tx = db.begin_write().await?;
    himmel_identity::bootstrap::ensure_service(&mut tx, "compute", "nova", &s.region, &url)
        .await
        .map_err(|e| anyhow::anyhow!("registering the compute endpoint: {e}"))?;
    let placement_url = format!("{}{}", s.public_url, himmel_compute::placement::PATH_PREFIX);
    himmel_identity::bootstrap::ensure_service(
        &mut tx,
        "placement",
        "placement",
        &s.region,
        &placement_url,
    )
    .await
    .map_err(|e| anyhow::anyhow!("registering the placement endpoint: {e}"))?;
    tx.commit().await?;
    // This host is a resource provider with the machine's CPUs, RAM and disk.
    let inventory = himmel_compute::placement::host_inventory(&s.data_dir);
    himmel_compute::placement::register_host(db, &s.dataplane.host_name, &inventory)
        .await
        .map_err(|e| anyhow::anyhow!("registering this host with placement: {e}"))?;
    let compute = himmel_compute::ComputeService::new(
        db.clone(),
        network.clone(),
        himmel_compute::ComputeConfig {
            host: s.dataplane.host_name.clone(),
            state_dir: s.data_dir.join("compute"),
        },
    )
    .with_images(Arc::new(images.clone()));
    let compute = match hypervisor(s).await {
        Some(hv) => compute.with_hypervisor(hv),
        None => compute,
    };
    network.set_instance_metadata(Arc::new(himmel_compute::metadata::GuestMetadata::new(
        compute.clone(),
    )));
    himmel_compute::reconcile::spawn(
        compute.clone(),
        himmel_compute::reconcile::ReconcileConfig {
            wait_for_ports: s.dataplane.enabled,
            ..Default::default()
        },
    );
    Ok(compute)
}

/// The image service's catalog entry (idempotent, so a changed public URL
/// is picked up on restart).
async fn register_image_endpoint(db: &himmel_db::Db, s: &Settings) -> anyhow::Result<()> {
    let url = format!("{}{}", s.public_url, himmel_image::PATH_PREFIX);
    let mut tx = db.begin_write().await?;
    himmel_identity::bootstrap::ensure_service(&mut tx, "image", "glance", &s.region, &url)
        .await
        .map_err(|e| anyhow::anyhow!("registering the image endpoint: {e}"))?;
    tx.commit().await?;
    Ok(())
}

/// This host's hypervisor, when the host can run instances: only with the
/// network dataplane on (instances live in namespaces it plugs ports into).
async fn hypervisor(s: &Settings) -> Option<Arc<dyn himmel_compute::host::Host>> {
    if !s.dataplane.enabled {
        tracing::info!("compute: no instances on this host: the network dataplane is off");
        return None;
    }
    if let Err(missing) = himmel_agent::host::can_run() {
        tracing::info!("compute: no instances on this host: {missing}");
        return None;
    }
    let prefix = s.dataplane.prefix.clone();
    let state_dir = s.data_dir.join("compute").join("hypervisor");
    let made = tokio::task::spawn_blocking(move || {
        himmel_agent::hypervisor::Hypervisor::new(&prefix, state_dir)
    })
    .await;
    match made {
        Ok(Ok(hv)) => {
            tracing::info!("compute: hypervisor ready");
            Some(Arc::new(hv))
        }
        Ok(Err(e)) => {
            tracing::error!("compute: no instances on this host: {e}");
            None
        }
        Err(e) => {
            tracing::error!("compute: no instances on this host: {e}");
            None
        }
    }
}

/// The Key Manager's catalog entry (idempotent, so a changed public URL is
/// picked up on restart).
async fn register_key_manager(db: &himmel_db::Db, s: &Settings) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    himmel_identity::bootstrap::ensure_service(
        &mut tx,
        "key-manager",
        "barbican",
        &s.region,
        &format!("{}{}", s.public_url, himmel_kms::api::PREFIX),
    )
    .await
    .map_err(|e| anyhow::anyhow!("registering the key manager endpoint: {e}"))?;
    tx.commit().await?;
    Ok(())
}

/// Binds the S3 listener and registers it in the catalog (types
/// `object-store-s3` and `s3`) at the URL it answers on.
async fn start_s3(
    s: &Settings,
    db: &himmel_db::Db,
    identity: &Identity,
    keyring: &himmel_kms::Keyring,
    audit: &himmel_audit::AuditLog,
) -> anyhow::Result<(tokio::net::TcpListener, Router)> {
    let store = himmel_object::ObjectStore::open(
        db.clone(),
        identity.clone(),
        keyring.clone(),
        &s.data_dir,
        &s.s3_region,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(s.s3_listen)
        .await
        .with_context(|| format!("binding the S3 listener {}", s.s3_listen))?;
    let addr = listener.local_addr()?;
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let url = format!("http://{host}:{}", addr.port());
    himmel_object::catalog::register(db, &s.region, &s.s3_region, &url).await?;
    println!("himmel S3 listening on {addr} (region {})", s.s3_region);
    Ok((listener, store.router(Arc::new(audit.clone()))))
}

/// Picks up rotated Fernet keys.
fn spawn_key_reloader(identity: Identity) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            if let Err(e) = identity.reload_keys() {
                tracing::warn!(error = %e, "reloading fernet keys");
            }
        }
    });
}

/// Deleting a project crypto-shreds its data: its keys are destroyed at the
/// next sweep (at start, then every 30 s).
fn spawn_project_key_shredder(keyring: himmel_kms::Keyring) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            match keyring.shred_deleted_projects().await {
                Ok(shredded) if !shredded.is_empty() => {
                    tracing::info!(projects = ?shredded, "destroyed the keys of deleted projects");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "shredding the keys of deleted projects"),
            }
        }
    });
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down: draining requests");
}

pub fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write_clouds_yaml(s: &Settings, auth_url: &str, password: &str) -> anyhow::Result<()> {
    let text = format!(
        "clouds:\n  himmel:\n    auth:\n      auth_url: {auth_url}\n      username: admin\n      password: \"{password}\"\n      \
         project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n    \
         region_name: {region}\n    interface: public\n    identity_api_version: 3\n",
        region = s.region
    );
    let path = s.data_dir.join("clouds.yaml");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
