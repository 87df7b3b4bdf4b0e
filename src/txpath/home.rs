//! Sender → home node by rendezvous (highest-random-weight) hashing over the in-sync nodes:
//! every kengate replica with the same node URLs picks the same node with no shared state,
//! and when a node leaves only the senders it was home to move. Pure.

use crate::cluster::{ClusterView, NodeId, NodeState};
use crate::routing::NodeSet;

/// A node's stable identity for hashing: FNV-1a of its URL (the same in every replica and
/// every version; the list order does not matter).
pub fn node_key(url: &str) -> u64 {
    url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A sender's key: its address bytes folded into 64 bits (addresses are already hashes).
pub fn sender_key(address: &[u8; 20]) -> u64 {
    address.chunks(8).fold(0u64, |acc, c| {
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(c) {
            *d = *s;
        }
        acc.rotate_left(17) ^ u64::from_le_bytes(w)
    })
}

/// SplitMix64's finalizer: a strong 64-bit mix, so weights are independent per (sender, node).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The home node: the in-sync node with the highest weight for this sender (falling back to
/// any up node when none is in sync), skipping `tried`.
pub fn home_node(view: &ClusterView, keys: &[u64], sender: u64, tried: NodeSet) -> Option<NodeId> {
    let best = |want_in_sync: bool| {
        view.nodes
            .iter()
            .enumerate()
            .filter(|&(id, n)| !tried.contains(id) && n.is_up() && (!want_in_sync || n.state == NodeState::InSync))
            .filter_map(|(id, _)| keys.get(id).map(|&k| (mix(sender ^ mix(k)), id)))
            .max()
            .map(|(_, id)| id)
    };
    best(true).or_else(|| best(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{compute_view, NodeObservation};

    fn view(up: &[bool]) -> ClusterView {
        let obs: Vec<_> = up
            .iter()
            .map(|&u| NodeObservation {
                head: Some(100),
                down: !u,
                ejected: false,
            })
            .collect();
        compute_view(0, &obs, 3)
    }

    fn keys(n: usize) -> Vec<u64> {
        (0..n).map(|i| node_key(&format!("http://10.0.0.{i}:8551/"))).collect()
    }

    fn sender(i: u32) -> u64 {
        let mut a = [0u8; 20];
        a[..4].copy_from_slice(&i.to_be_bytes());
        a[19] = (i % 251) as u8;
        sender_key(&a)
    }

    #[test]
    fn stable_and_spread() {
        let (v, k) = (view(&[true; 4]), keys(4));
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let h = home_node(&v, &k, sender(i), NodeSet::default()).unwrap();
            assert_eq!(home_node(&v, &k, sender(i), NodeSet::default()), Some(h), "not stable");
            counts[h] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "uneven: {counts:?}");
    }

    #[test]
    fn only_the_failed_nodes_senders_move() {
        let k = keys(4);
        let (all, without2) = (view(&[true; 4]), view(&[true, true, false, true]));
        for i in 0..2000 {
            let before = home_node(&all, &k, sender(i), NodeSet::default()).unwrap();
            let after = home_node(&without2, &k, sender(i), NodeSet::default()).unwrap();
            if before != 2 {
                assert_eq!(before, after, "sender {i} moved though its home stayed up");
            } else {
                assert_ne!(after, 2);
            }
        }
    }

    #[test]
    fn order_of_the_node_list_does_not_matter() {
        let urls = ["http://a:1/", "http://b:1/", "http://c:1/"];
        let k1: Vec<u64> = urls.iter().map(|u| node_key(u)).collect();
        let k2: Vec<u64> = urls.iter().rev().map(|u| node_key(u)).collect();
        let v = view(&[true; 3]);
        for i in 0..500 {
            let a = home_node(&v, &k1, sender(i), NodeSet::default()).unwrap();
            let b = home_node(&v, &k2, sender(i), NodeSet::default()).unwrap();
            assert_eq!(urls[a], urls[2 - b]);
        }
    }

    #[test]
    fn skips_tried_and_down_nodes() {
        let (v, k) = (view(&[true, false, true]), keys(3));
        let h = home_node(&v, &k, 7, NodeSet::default()).unwrap();
        assert_ne!(h, 1);
        let mut tried = NodeSet::default();
        tried.insert(h);
        let h2 = home_node(&v, &k, 7, tried).unwrap();
        assert!(h2 != h && h2 != 1);
        tried.insert(h2);
        assert_eq!(home_node(&v, &k, 7, tried), None);
    }
}
