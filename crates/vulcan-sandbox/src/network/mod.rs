//! A workload's network (feature `network`): its own network namespace, a veth pair to the
//! host, nftables rules that let through only what its [`NetworkPolicy`] allows, and a
//! resolver of its own that answers only the names the policy allows.
//!
//! Reading order: [`Egress::start`] (once per server: the host's table of rules),
//! [`Egress::open`] (per sandbox: namespace and veth, made ahead of time where a stocked one
//! is ready; then its cap, rules and resolver, `resolver.rs`), [`SandboxNetwork::close`]
//! (counts the bytes and removes it all). Everything is made before the code starts and
//! removed when it ends; a server that died leaves its sandboxes' namespaces, which the next
//! start removes (each slot names the process that made it).
//!
//! How a packet goes: the sandbox (gVisor's own network stack, a Deno process, or a
//! microVM's NIC through a tap bridged to the veth in its namespace) sends it through its
//! veth to the host; the host's `forward` hook looks its interface up in the map
//! `sandboxes` and jumps to that sandbox's chain: deny rules, then the never-reachable ranges,
//! then its allowed nets and the addresses its resolver answered (for their TTL); anything
//! else is dropped and counted. What the sandbox sends to the host itself is dropped, except
//! DNS to its own resolver. Allowed traffic leaves masqueraded as the host.

pub mod dns;
mod resolver;
mod rules;
mod scratch;
mod tools;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;
use vulcan_domain::NetworkPolicy;

pub use rules::TABLE;
use scratch::remove_dead_scratch;
pub use scratch::ScratchTap;
use tools::run;
pub use tools::Behind;

/// Where a server's sandboxes' networks come from.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// The addresses sandboxes and their host ends get, a /30 each (a /16 gives 16,384).
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    /// The resolver that allowed names are looked up with.
    pub upstream: SocketAddr,
    /// More ranges no sandbox reaches (the cluster's database, the other nodes).
    pub never: Vec<(Ipv4Addr, u8)>,
}

/// The host's side: its rules, and the slots handed out.
#[derive(Debug)]
pub struct Egress {
    config: EgressConfig,
    next: AtomicU32,
    slots: u32,
    stock: std::sync::Mutex<Stock>,
    /// The other nodes' addresses in the rules now (sorted).
    peers: std::sync::Mutex<Vec<Ipv4Addr>>,
}

/// Slots whose namespace and link are made ahead of time, so that a sandbox's start pays
/// only for its cap, its rules and its resolver. Per kind of link ([`Link`] as index).
#[derive(Debug, Default)]
struct Stock {
    ready: [Vec<u32>; 2],
    making: [bool; 2],
}

/// Slots kept made ahead of time per kind of link.
pub const STOCK: usize = 2;

/// Where each slot's owner is written (its process id), so that a later start can tell
/// which namespaces a dead server left.
const OWNERS: &str = "/run/vulcan-egress";

impl Egress {
    /// Checks the tools, turns on IPv4 forwarding and installs the host's table (once; a
    /// second server on the host shares it). Namespaces left by a server that is gone are
    /// removed.
    pub async fn start(config: EgressConfig) -> Result<Arc<Egress>, String> {
        if config.prefix > 28 {
            return Err(format!(
                "the egress subnet /{} is too small: give a /28 or larger",
                config.prefix
            ));
        }
        // The last /30 holds the shared resolver address.
        let slots = (1u32 << ((32 - u32::from(config.prefix)) - 2)) - 1;
        let egress = Arc::new(Egress {
            config,
            next: AtomicU32::new(std::process::id() % slots),
            slots,
            stock: Default::default(),
            peers: Default::default(),
        });
        let me = egress.clone();
        tokio::task::spawn_blocking(move || me.prepare_host())
            .await
            .map_err(|e| format!("setting up egress failed: {e}"))??;
        Ok(egress)
    }

    fn prepare_host(&self) -> Result<(), String> {
        for tool in ["ip", "nft"] {
            run(tool, &["-V"], None)
                .map_err(|e| format!("egress needs `{tool}` (Debian: iproute2, nftables): {e}"))?;
        }
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| format!("cannot turn on IPv4 forwarding: {e}"))?;
        let script = rules::host(
            self.config.subnet,
            self.config.prefix,
            self.resolver(),
            &self.config.never,
        );
        run("nft", &["-f", "-"], Some(&script))
            .map_err(|e| format!("cannot install the egress rules: {e}"))?;
        std::fs::create_dir_all(OWNERS).map_err(|e| format!("cannot create {OWNERS}: {e}"))?;
        self.remove_orphans();
        remove_dead_scratch();
        Ok(())
    }

    /// Removes the slots whose owner is no longer running.
    fn remove_orphans(&self) {
        let Ok(entries) = std::fs::read_dir(OWNERS) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(slot) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let owner = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let alive = owner
                .trim()
                .parse::<i32>()
                .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                tracing::info!(
                    slot,
                    "removing the network of a sandbox a stopped server left"
                );
                self.remove(slot, &self.addresses(slot).0);
            }
        }
    }

    /// Makes `addresses` (the cluster's other nodes') unreachable from every sandbox, in
    /// place of those given before; nothing runs if they are the same.
    pub fn set_peers(&self, mut addresses: Vec<Ipv4Addr>) -> Result<(), String> {
        addresses.sort();
        addresses.dedup();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if *peers == addresses {
            return Ok(());
        }
        run("nft", &["-f", "-"], Some(&rules::peers(&addresses)))
            .map_err(|e| format!("cannot update the other nodes' addresses: {e}"))?;
        *peers = addresses;
        Ok(())
    }

    /// The subnet sandboxes' links are made in, and its prefix.
    pub fn subnet(&self) -> (Ipv4Addr, u8) {
        (self.config.subnet, self.config.prefix)
    }

    /// The resolver address every sandbox can use (its `/etc/resolv.conf` when that file
    /// is shared, as in the isolates' jail): the last usable address of the subnet, sent on
    /// to the sandbox's own resolver.
    pub fn resolver(&self) -> Ipv4Addr {
        let size = 1u32 << (32 - u32::from(self.config.prefix));
        Ipv4Addr::from(u32::from(self.config.subnet) + size - 2)
    }

    /// The host's and the sandbox's address in `slot`.
    fn addresses(&self, slot: u32) -> (Ipv4Addr, Ipv4Addr) {
        let base = u32::from(self.config.subnet) + slot * 4;
        (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
    }

    /// Makes a sandbox's network for `policy` (each way capped at `cap_mbps`): a namespace
    /// with `eth0` (address, default route through the host), its rules and its resolver,
    /// listening before this returns.
    pub async fn open(
        self: &Arc<Self>,
        policy: &NetworkPolicy,
        cap_mbps: Option<u32>,
    ) -> Result<SandboxNetwork, String> {
        self.open_link(policy, cap_mbps, Link::Veth).await
    }

    /// Makes a microVM's network for `policy`: as [`Egress::open`], but the namespace's
    /// `eth0` is bridged to a tap ([`TAP`]) for the VMM, started in the namespace, to
    /// attach the VM's NIC to; the guest is told its address ([`SandboxNetwork::address`]),
    /// its gateway and resolver ([`SandboxNetwork::resolver`]).
    pub async fn open_tap(
        self: &Arc<Self>,
        policy: &NetworkPolicy,
        cap_mbps: Option<u32>,
    ) -> Result<SandboxNetwork, String> {
        self.open_link(policy, cap_mbps, Link::Tap).await
    }

    async fn open_link(
        self: &Arc<Self>,
        policy: &NetworkPolicy,
        cap_mbps: Option<u32>,
        link: Link,
    ) -> Result<SandboxNetwork, String> {
        let me = self.clone();
        let slot = tokio::task::spawn_blocking(move || match me.take_stocked(link) {
            Some(slot) => Ok(slot),
            None => me.claim(link),
        })
        .await
        .map_err(|e| format!("setting up the sandbox's network failed: {e}"))??;
        self.restock(link);
        let mut network = self.network(slot);
        network.apply(policy, cap_mbps).await?;
        Ok(network)
    }

    /// A sandbox's network made now, before its policy is known (for a sandbox started
    /// ahead of its workload): its chain refuses everything and no resolver answers until
    /// [`SandboxNetwork::apply`] gives it a policy. Blocking.
    pub fn reserve(self: &Arc<Self>) -> Result<SandboxNetwork, String> {
        self.claim(Link::Veth).map(|slot| self.network(slot))
    }

    /// [`Egress::reserve`] for a microVM: the namespace's `eth0` bridged to a tap, as
    /// [`Egress::open_tap`] makes it. Blocking.
    pub fn reserve_tap(self: &Arc<Self>) -> Result<SandboxNetwork, String> {
        self.claim(Link::Tap).map(|slot| self.network(slot))
    }

    /// Slot `slot`, made, as the network its sandbox holds (removed when dropped).
    fn network(self: &Arc<Self>, slot: u32) -> SandboxNetwork {
        let (host, guest) = self.addresses(slot);
        SandboxNetwork {
            egress: self.clone(),
            slot,
            host,
            guest,
            resolver: None,
            removed: false,
        }
    }

    /// A slot made ahead of time with `link`, if one is ready.
    fn take_stocked(&self, link: Link) -> Option<u32> {
        self.stock.lock().unwrap_or_else(|p| p.into_inner()).ready[link as usize].pop()
    }

    /// Makes slots with `link` ahead of time, off the caller's path, up to [`STOCK`] of
    /// them (the first sandbox of a kind starts it: a server that never gives that kind a
    /// network holds none).
    fn restock(self: &Arc<Self>, link: Link) {
        {
            let mut stock = self.stock.lock().unwrap_or_else(|p| p.into_inner());
            if stock.making[link as usize] || stock.ready[link as usize].len() >= STOCK {
                return;
            }
            stock.making[link as usize] = true;
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _behind = Behind::enter();
            me.make_stock(link)
        });
    }

    /// Makes slots with `link` until [`STOCK`] are ready (see [`Egress::restock`]).
    fn make_stock(&self, link: Link) {
        loop {
            let full = {
                let mut stock = self.stock.lock().unwrap_or_else(|p| p.into_inner());
                let full = stock.ready[link as usize].len() >= STOCK;
                if full {
                    stock.making[link as usize] = false;
                }
                full
            };
            if full {
                return;
            }
            match self.claim(link) {
                Ok(slot) => self.stock.lock().unwrap_or_else(|p| p.into_inner()).ready
                    [link as usize]
                    .push(slot),
                Err(e) => {
                    tracing::warn!(error = %e, "could not make a sandbox network ahead of time");
                    self.stock.lock().unwrap_or_else(|p| p.into_inner()).making[link as usize] =
                        false;
                    return;
                }
            }
        }
    }

    /// Removes the slots made ahead of time (at shutdown: a server that dies leaves them
    /// to the next start, as it leaves its sandboxes').
    pub fn drain(&self) {
        let slots: Vec<u32> = {
            let mut stock = self.stock.lock().unwrap_or_else(|p| p.into_inner());
            stock.ready.iter_mut().flat_map(std::mem::take).collect()
        };
        for slot in slots {
            self.remove(slot, &self.addresses(slot).0);
        }
    }

    /// Takes the next free slot and makes its namespace, its link and its chain (which
    /// refuses everything until a policy's elements are added): what every sandbox of that
    /// kind has, before its policy is known.
    fn claim(&self, link: Link) -> Result<u32, String> {
        for _ in 0..self.slots.min(64) {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots;
            let (host, _) = self.addresses(slot);
            let ns = namespace(slot);
            // `netns add` fails if the name exists: another sandbox (maybe another
            // server's) has the slot.
            if run("ip", &["netns", "add", &ns], None).is_err() {
                continue;
            }
            let made = std::fs::write(format!("{OWNERS}/{slot}"), std::process::id().to_string())
                .map_err(|e| format!("cannot record slot {slot}: {e}"))
                .and_then(|()| match link {
                    Link::Veth => self.make_veth(slot, &ns),
                    Link::Tap => self.make_tap(slot, &ns),
                })
                .and_then(|()| run("nft", &["-f", "-"], Some(&rules::slot(slot, host))));
            if let Err(e) = made {
                self.remove(slot, &host);
                return Err(format!("cannot make the sandbox's network: {e}"));
            }
            return Ok(slot);
        }
        Err(
            "no free network slot for the sandbox: too many sandboxes with a network at once"
                .into(),
        )
    }

    /// Gives slot `slot` its cap and its policy's networks (a policy of names only has
    /// none: nothing runs).
    fn activate(
        &self,
        slot: u32,
        policy: &NetworkPolicy,
        cap_mbps: Option<u32>,
    ) -> Result<(), String> {
        self.shape(slot, &namespace(slot), cap_mbps)
            .and_then(|()| match rules::policy_elements(slot, policy) {
                Some(elements) => run("nft", &["-f", "-"], Some(&elements)),
                None => Ok(()),
            })
            .map_err(|e| format!("cannot make the sandbox's network: {e}"))
    }

    /// The veth pair every kind of link starts from: `vxN` on the host with the host's
    /// address, up, and its peer `eth0` in namespace `ns`.
    fn veth_pair(&self, slot: u32, ns: &str) -> Result<(), String> {
        let (host, _) = self.addresses(slot);
        let outside = format!(
            "link add vx{slot} type veth peer name eth0 netns {ns}\n\
             addr add {host}/30 dev vx{slot}\n\
             link set vx{slot} up\n"
        );
        run("ip", &["-batch", "-"], Some(&outside))
    }

    /// A gVisor or isolate sandbox's link: the veth pair, `eth0` with the sandbox's address
    /// and its default route through the host; capped by [`Egress::shape`].
    fn make_veth(&self, slot: u32, ns: &str) -> Result<(), String> {
        let (host, guest) = self.addresses(slot);
        self.veth_pair(slot, ns)?;
        let inside = format!(
            "addr add {guest}/30 dev eth0\n\
             link set eth0 up\n\
             link set lo up\n\
             route add default via {host}\n"
        );
        run("ip", &["-n", ns, "-batch", "-"], Some(&inside))
    }

    /// A VM's link: the veth pair, and in the namespace a tap ([`TAP`]) the VMM attaches
    /// the VM's NIC to (persistent until removed, so that it is ready before the VM
    /// starts), bridged to the namespace's end of the veth. The VM's NIC takes the
    /// sandbox's address itself, so what it sends leaves through the veth as a veth
    /// sandbox's does, and is filtered, counted and shaped (each end's egress) the same way.
    fn make_tap(&self, slot: u32, ns: &str) -> Result<(), String> {
        self.veth_pair(slot, ns)?;
        let inside = format!(
            "tuntap add dev {TAP} mode tap\n\
             link add br0 type bridge\n\
             link set eth0 master br0\n\
             link set {TAP} master br0\n\
             link set eth0 up\n\
             link set {TAP} up\n\
             link set br0 up\n"
        );
        run("ip", &["-n", ns, "-batch", "-"], Some(&inside))
    }

    /// Caps each way of slot `slot`'s veth at `cap_mbps`: what the sandbox receives leaves
    /// the host's end, what it sends leaves its own.
    fn shape(&self, slot: u32, ns: &str, cap_mbps: Option<u32>) -> Result<(), String> {
        let Some(mbps) = cap_mbps else {
            return Ok(());
        };
        run(
            "tc",
            &["-batch", "-"],
            Some(&rules::shape(&format!("vx{slot}"), mbps)),
        )?;
        run(
            "tc",
            &["-n", ns, "-batch", "-"],
            Some(&rules::shape("eth0", mbps)),
        )
    }

    /// Removes slot `slot`: its rules, its namespace (which takes the veth pair with it)
    /// and its owner record. Each part may be gone already.
    fn remove(&self, slot: u32, host: &Ipv4Addr) {
        if let Err(e) = run(
            "nft",
            &["-f", "-"],
            Some(&rules::remove_sandbox(slot, *host)),
        ) {
            tracing::debug!(slot, error = %e, "removing the sandbox's rules");
        }
        if let Err(e) = run("ip", &["netns", "del", &namespace(slot)], None) {
            tracing::debug!(slot, error = %e, "removing the sandbox's namespace");
        }
        // The host end goes with the namespace; one that outlived it is removed here.
        let link = format!("vx{slot}");
        if std::path::Path::new("/sys/class/net").join(&link).exists() {
            let _ = run("ip", &["link", "del", &link], None);
        }
        let _ = std::fs::remove_file(format!("{OWNERS}/{slot}"));
    }
}

/// What joins a sandbox to the host.
#[derive(Debug, Clone, Copy)]
enum Link {
    /// A veth pair into the sandbox's namespace (gVisor, isolates).
    Veth = 0,
    /// The veth pair bridged, in the namespace, to a tap a VMM attaches a VM's NIC to.
    Tap = 1,
}

/// The name of a VM's tap in its namespace.
pub const TAP: &str = "tap0";

fn namespace(slot: u32) -> String {
    format!("vulcan-egress-{slot}")
}

/// One sandbox's network; removed by [`SandboxNetwork::close`] or, failing that, when
/// dropped.
pub struct SandboxNetwork {
    egress: Arc<Egress>,
    slot: u32,
    host: Ipv4Addr,
    guest: Ipv4Addr,
    resolver: Option<tokio::task::JoinHandle<()>>,
    removed: bool,
}

/// Bytes a sandbox sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

impl SandboxNetwork {
    /// The namespace's path, for a runtime to join.
    pub fn namespace_path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", namespace(self.slot)))
    }

    /// The sandbox's resolver (its `/etc/resolv.conf` nameserver) and gateway: the
    /// host's end of its link.
    pub fn resolver(&self) -> Ipv4Addr {
        self.host
    }

    /// The prefix length of the sandbox's link (its address and the host's share it).
    pub fn prefix(&self) -> u8 {
        30
    }

    /// The sandbox's own address.
    pub fn address(&self) -> Ipv4Addr {
        self.guest
    }

    /// What the sandbox sent and received so far (the host end counts the other way).
    pub fn traffic(&self) -> Traffic {
        let read = |what: &str| {
            std::fs::read_to_string(format!("/sys/class/net/vx{}/statistics/{what}", self.slot))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0)
        };
        Traffic {
            tx_bytes: read("rx_bytes"),
            rx_bytes: read("tx_bytes"),
        }
    }

    /// Gives the network its policy (each way capped at `cap_mbps`) and starts its
    /// resolver, listening before this returns. Once per network: a second policy is
    /// refused (what the first let through may already be in use).
    pub async fn apply(
        &mut self,
        policy: &NetworkPolicy,
        cap_mbps: Option<u32>,
    ) -> Result<(), String> {
        if self.resolver.is_some() {
            return Err("the sandbox's network has its policy already".into());
        }
        let (egress, slot) = (self.egress.clone(), self.slot);
        let policy = Arc::new(policy.clone());
        let rules_for = policy.clone();
        tokio::task::spawn_blocking(move || egress.activate(slot, &rules_for, cap_mbps))
            .await
            .map_err(|e| format!("setting up the sandbox's network failed: {e}"))??;
        let socket = UdpSocket::bind((self.host, 53)).await.map_err(|e| {
            format!(
                "cannot start the sandbox's resolver on {}:53: {e}",
                self.host
            )
        })?;
        self.resolver = Some(tokio::spawn(resolver::resolve(
            socket,
            policy,
            self.egress.config.upstream,
            slot,
        )));
        Ok(())
    }

    /// Counts the bytes and stops the resolver; the namespace, the veth pair and the rules
    /// are removed off the caller's path (the sandbox is gone: nothing uses them).
    pub fn close(mut self) -> Traffic {
        let traffic = self.traffic();
        let removal = self.stop();
        tokio::task::spawn_blocking(move || {
            let _behind = Behind::enter();
            removal()
        });
        traffic
    }

    /// Stops the resolver and removes the network before returning (blocking: for a
    /// network whose sandbox never started, at shutdown).
    pub fn remove(mut self) {
        self.stop()();
    }

    /// Stops the resolver; what is left to do is removing the network (once: the
    /// network counts as removed from here on).
    fn stop(&mut self) -> impl FnOnce() + Send + 'static {
        if let Some(resolver) = self.resolver.take() {
            resolver.abort();
        }
        self.removed = true;
        let (egress, slot, host) = (self.egress.clone(), self.slot, self.host);
        move || egress.remove(slot, &host)
    }
}

impl Drop for SandboxNetwork {
    fn drop(&mut self) {
        if !self.removed {
            let removal = self.stop();
            std::thread::spawn(move || {
                let _behind = Behind::enter();
                removal()
            });
        }
    }
}
