package io.kengate.examples;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.klaytn.caver.methods.response.Bytes32;
import com.klaytn.caver.methods.response.TransactionReceipt;
import com.klaytn.caver.rpc.Klay;
import com.klaytn.caver.rpc.RPC;
import com.klaytn.caver.transaction.TxPropertyBuilder;
import com.klaytn.caver.transaction.type.ValueTransfer;
import com.klaytn.caver.utils.Utils;
import com.klaytn.caver.wallet.keyring.KeyringFactory;
import com.klaytn.caver.wallet.keyring.SingleKeyring;
import org.web3j.protocol.core.Response;
import org.web3j.protocol.http.HttpService;
import org.web3j.utils.Numeric;

import java.io.File;
import java.math.BigDecimal;
import java.math.BigInteger;

/**
 * caver-java BApp smoke test: chain id, balance, a value transfer signed with a keyring, send, poll for the
 * receipt and check its status.
 * Uses caver-java's RPC, KeyringFactory and transaction classes directly rather than the Caver facade: the facade's
 * constructor also builds caver.ipfs, whose IPFS client library is published only outside Maven Central.
 * Env: RPC_URL (required), CHAIN_ID, ACCOUNTS_FILE, ACCOUNT_INDEX (default 3).
 */
public class Transfer {
    static final int RECEIPT_TIMEOUT_SECONDS = 60;

    static String env(String name, String fallback) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) v = fallback;
        if (v == null || v.isEmpty()) throw new IllegalStateException(name + " is not set");
        return v;
    }

    /** Throws when the node answered with a JSON-RPC error instead of a result. */
    static <T extends Response<?>> T check(T response, String what) {
        if (response.hasError()) {
            throw new IllegalStateException(what + ": " + response.getError().getMessage());
        }
        return response;
    }

    public static void main(String[] args) {
        try {
            run();
            System.out.println("caver-java: OK");
            System.exit(0);
        } catch (Throwable e) {
            System.err.println("caver-java: FAILED: " + e);
            System.exit(1);
        }
    }

    static void run() throws Exception {
        String rpcUrl = env("RPC_URL", null);
        BigInteger expectedChainId = new BigInteger(env("CHAIN_ID", System.getenv("LOCALNET_CHAIN_ID")));
        JsonNode accounts = new ObjectMapper().readTree(new File(env("ACCOUNTS_FILE", System.getenv("LOCALNET_ACCOUNTS"))));
        int index = Integer.parseInt(env("ACCOUNT_INDEX", "3"));
        if (index >= accounts.size()) throw new IllegalStateException("no test account #" + index + " in the accounts file");

        Klay klay = new RPC(new HttpService(rpcUrl)).getKlay();
        SingleKeyring sender = KeyringFactory.createFromPrivateKey(accounts.get(index).get("privateKey").asText());
        System.out.println("rpc " + rpcUrl + ", sender #" + index + " " + sender.getAddress());

        // 1. chain id (klay_chainID)
        BigInteger chainId = check(klay.getChainID().send(), "klay_chainID").getValue();
        if (!chainId.equals(expectedChainId)) throw new IllegalStateException("chain id " + chainId + ", expected " + expectedChainId);
        System.out.println("chain id: " + chainId);

        // 2. balance (klay_getBalance, "latest")
        BigInteger balance = check(klay.getBalance(sender.getAddress()).send(), "klay_getBalance").getValue();
        if (balance.signum() == 0) throw new IllegalStateException("sender " + sender.getAddress() + " has no KLAY");
        System.out.println("balance: " + Utils.convertFromPeb(balance.toString(), Utils.KlayUnit.KLAY) + " KLAY");

        // 3. value transfer (type 0x08) to a fresh address; signing fills nonce, gas price and chain id from the node
        String recipient = KeyringFactory.generate().getAddress();
        BigInteger value = new BigDecimal(Utils.convertToPeb("0.01", Utils.KlayUnit.KLAY)).toBigIntegerExact();
        ValueTransfer tx = TxPropertyBuilder.valueTransfer()
                .setKlaytnCall(klay)
                .setFrom(sender.getAddress())
                .setTo(recipient)
                .setValue(value)
                .setGas(BigInteger.valueOf(25000))
                .build();
        tx.sign(sender);
        Bytes32 sent = check(klay.sendRawTransaction(tx).send(), "klay_sendRawTransaction");
        String hash = sent.getResult();
        System.out.println("value transfer: nonce " + Numeric.decodeQuantity(tx.getNonce())
                + ", gas price " + Numeric.decodeQuantity(tx.getGasPrice()) + ", hash " + hash);

        // 4. poll klay_getTransactionReceipt once a second, for at most 60 s
        TransactionReceipt.TransactionReceiptData receipt = null;
        long deadline = System.currentTimeMillis() + RECEIPT_TIMEOUT_SECONDS * 1000L;
        while (receipt == null) {
            receipt = check(klay.getTransactionReceipt(hash).send(), "klay_getTransactionReceipt").getResult();
            if (receipt == null) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("timed out after " + RECEIPT_TIMEOUT_SECONDS + "s waiting for receipt of " + hash);
                }
                Thread.sleep(1000);
            }
        }
        if (!"0x1".equals(receipt.getStatus())) {
            throw new IllegalStateException("value transfer: receipt status " + receipt.getStatus() + " (txError " + receipt.getTxError() + ")");
        }
        System.out.println("value transfer: mined in block " + Numeric.decodeQuantity(receipt.getBlockNumber())
                + " (gas used " + Numeric.decodeQuantity(receipt.getGasUsed()) + ")");

        BigInteger got = check(klay.getBalance(recipient).send(), "klay_getBalance").getValue();
        if (!got.equals(value)) throw new IllegalStateException("recipient balance " + got + ", expected " + value);
        System.out.println("recipient " + recipient + " balance: " + Utils.convertFromPeb(got.toString(), Utils.KlayUnit.KLAY) + " KLAY");
    }
}
