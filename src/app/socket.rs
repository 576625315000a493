//! The chat names a socket by its own [`SocketId`], the loop by its [`ConnId`]: one is
//! the other's bits. So there is no table to keep in step, and a stale id still cannot
//! reach a connection that reused its slot (the generation travels inside the bits).

use crate::chat::socket::SocketId;
use crate::net::slab::ConnId;

pub fn socket_of(conn: ConnId) -> SocketId {
    SocketId(conn.to_bits())
}

pub fn conn_of(socket: SocketId) -> ConnId {
    ConnId::from_bits(socket.0)
}
