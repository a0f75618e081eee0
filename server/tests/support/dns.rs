//! A small authoritative DNS server on loopback UDP for the discovery tests: it answers
//! A and SRV questions from a fixed record list (hickory-proto encodes and decodes the
//! messages), NXDOMAIN for names it does not know. No outside network.

// Each test file includes this module and uses part of it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record};

/// One record the server answers with.
#[derive(Debug, Clone)]
pub enum Rec {
    /// `name A ip`.
    A(String, Ipv4Addr),
    /// `name SRV priority weight port target`.
    Srv(String, u16, u16, u16, String),
}

impl Rec {
    fn name(&self) -> &str {
        match self {
            Rec::A(n, _) | Rec::Srv(n, ..) => n,
        }
    }

    fn to_record(&self) -> Record {
        let name = |n: &str| Name::from_ascii(fqdn(n)).expect("name");
        match self {
            Rec::A(n, ip) => Record::from_rdata(name(n), 5, RData::A(A(*ip))),
            Rec::Srv(n, priority, weight, port, target) => Record::from_rdata(
                name(n),
                5,
                RData::SRV(SRV::new(*priority, *weight, *port, name(target))),
            ),
        }
    }
}

fn fqdn(n: &str) -> String {
    if n.ends_with('.') {
        n.to_string()
    } else {
        format!("{n}.")
    }
}

/// The running server; stops when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl DnsServer {
    /// Serves `records` on a free loopback UDP port.
    pub fn start(records: Vec<Rec>) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind dns");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let addr = socket.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&records, &buf[..n]) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        DnsServer { addr, stop }
    }
}

/// The reply to one query message.
fn answer(records: &[Rec], query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let mut reply = Message::new();
    reply
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_authoritative(true)
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true);
    let mut known = false;
    for q in request.queries() {
        reply.add_query(q.clone());
        let asked = q.name().to_ascii().to_ascii_lowercase();
        for r in records {
            if fqdn(r.name()).to_ascii_lowercase() != asked {
                continue;
            }
            known = true;
            let record = r.to_record();
            if record.record_type() == q.query_type() {
                reply.add_answer(record);
            }
        }
    }
    if !known {
        reply.set_response_code(ResponseCode::NXDomain);
    }
    reply.to_vec().ok()
}
