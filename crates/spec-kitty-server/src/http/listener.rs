//! The listening socket.
//!
//! `std::net::TcpListener::bind` asks the kernel for an accept queue of
//! 128 connections. A board page is a connection that stays open, and when
//! a server restarts every open page reconnects at once: 500 watchers
//! opening their streams together overflowed that queue (the kernel logs
//! "Possible SYN flooding", and some connections were reset). The queue
//! asked for here is as deep as the connection cap's default; the kernel
//! trims it to `net.core.somaxconn`.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// How many connections may wait to be accepted.
pub const ACCEPT_QUEUE: i32 = 1024;

/// A non-blocking listener on `addr` with an accept queue of
/// [`ACCEPT_QUEUE`].
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std does: a restarted server can bind its port again while the
    // old connections are in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(ACCEPT_QUEUE)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
