//! `ClientAddress`: who is asking, for the per-address limits. The peer's address, unless
//! the peer is a trusted proxy (`TRUSTED_PROXIES`: addresses or CIDR ranges, parsed by the
//! `ipnet` crate), in which case `X-Forwarded-For` is read from the right.

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::http::error::ApiError;
use crate::listener::Peer;
use crate::state::AppState;

/// The client's address: the peer's, or, when the peer is a trusted proxy, the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<Peer>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| {
                info.0.address.ip()
            });
        Ok(Self(client_address(
            peer,
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|hop| !is_trusted(hop))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let proxies: IpNet = "10.0.0.0/24".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.0.0.1".parse().unwrap(),
        );
        let peer: IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!(client_address(peer, &headers, &[IpNet::from(proxy)]), peer);
        assert_eq!(
            client_address(proxy, &headers, &[IpNet::from(proxy)]),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_address(proxy, &HeaderMap::new(), &[IpNet::from(proxy)]),
            proxy
        );
        // A range: every proxy in it is trusted, and skipped in the chain.
        let mut chain = HeaderMap::new();
        chain.insert("x-forwarded-for", "203.0.113.7, 10.0.0.9".parse().unwrap());
        assert_eq!(
            client_address(proxy, &chain, &[proxies]),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
    }
}
