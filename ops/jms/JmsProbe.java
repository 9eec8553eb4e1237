// A minimal JMS client (OpenWire, ActiveMQ's Java client from Debian's libactivemq-java),
// standing in for a national customs system, so tests can prove that what the ledger sends
// over STOMP is what a JMS application sees, and the other way round.
//
//   JmsProbe send QUEUE BODY [name=value...]   send a persistent TextMessage; prints its JMSMessageID
//   JmsProbe receive QUEUE TIMEOUT_MS          receive one message and print it (format below)
//
// In `send`, the names JMSCorrelationID and JMSType set those headers; every other name
// becomes a String property. The broker is tcp://127.0.0.1:${ACTIVEMQ_OPENWIRE_PORT:-61616}
// unless JMS_BROKER_URL says otherwise. It connects as JMS_BROKER_USER with the password in
// JMS_BROKER_PASSWORD (environment, so the password is not on the command line for `ps` to
// show); without JMS_BROKER_USER it connects anonymously, which the broker refuses.
//
// A refusal by the broker (wrong password, a queue the user may not use) ends the probe with
// exit code 4 and the broker's reason on stderr, e.g. "User tg is not authorized to write to:
// queue://transit.BF.in".
//
// `receive` prints, one per line, `type=<TextMessage|BytesMessage|...>`, the JMS headers as
// `JMSMessageID=...` etc., each property as `property.<name>=<value>` (sorted by name, with its
// Java type as `propertyType.<name>=<Class>`), then a line `--body--` followed by the body
// exactly as received. Newlines and backslashes in header/property values are escaped
// (`\n`, `\\`) so that one line is one field. Exit code 3 means no message before the timeout.
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;

import javax.jms.BytesMessage;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.JMSSecurityException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Queue;
import javax.jms.Session;
import javax.jms.TextMessage;

import org.apache.activemq.ActiveMQConnectionFactory;

public final class JmsProbe {
    private JmsProbe() {}

    public static void main(String[] args) throws Exception {
        // Explicit UTF-8: Java 17 would otherwise encode with the locale's charset, which
        // is ASCII on a bare CI image and would turn "Lomé" into "Lom?".
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        if (args.length < 3 || !(args[0].equals("send") || args[0].equals("receive"))) {
            System.err.println("usage: JmsProbe send QUEUE BODY [name=value...] | receive QUEUE TIMEOUT_MS");
            System.exit(2);
        }
        String url = System.getenv("JMS_BROKER_URL");
        if (url == null || url.isEmpty()) {
            String port = System.getenv("ACTIVEMQ_OPENWIRE_PORT");
            url = "tcp://127.0.0.1:" + (port == null || port.isEmpty() ? "61616" : port);
        }
        ActiveMQConnectionFactory factory = new ActiveMQConnectionFactory(url);
        String user = System.getenv("JMS_BROKER_USER");
        Connection connection;
        try {
            if (user == null || user.isEmpty()) {
                connection = factory.createConnection();
            } else {
                String password = System.getenv("JMS_BROKER_PASSWORD");
                connection = factory.createConnection(user, password == null ? "" : password);
            }
            // Authentication happens when the connection starts.
            connection.start();
        } catch (JMSSecurityException e) {
            System.err.println("refused: " + e.getMessage());
            System.exit(4);
            return;
        }
        try {
            Session session = connection.createSession(false, Session.AUTO_ACKNOWLEDGE);
            Queue queue = session.createQueue(args[1]);
            if (args[0].equals("send")) {
                send(out, session, queue, args);
            } else {
                int code = receive(out, session, queue, Long.parseLong(args[2]));
                if (code != 0) {
                    connection.close();
                    System.exit(code);
                }
            }
        } catch (JMSSecurityException e) {
            System.err.println("refused: " + e.getMessage());
            connection.close();
            System.exit(4);
        } finally {
            connection.close();
        }
    }

    private static void send(PrintStream out, Session session, Queue queue, String[] args) throws Exception {
        TextMessage message = session.createTextMessage(args[2]);
        for (int i = 3; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("property must be name=value: " + args[i]);
            }
            String name = args[i].substring(0, eq);
            String value = args[i].substring(eq + 1);
            if (name.equals("JMSCorrelationID")) {
                message.setJMSCorrelationID(value);
            } else if (name.equals("JMSType")) {
                message.setJMSType(value);
            } else {
                message.setStringProperty(name, value);
            }
        }
        MessageProducer producer = session.createProducer(queue);
        producer.setDeliveryMode(DeliveryMode.PERSISTENT);
        producer.send(message);
        out.println("JMSMessageID=" + message.getJMSMessageID());
    }

    private static int receive(PrintStream out, Session session, Queue queue, long timeoutMs) throws Exception {
        MessageConsumer consumer = session.createConsumer(queue);
        Message message = consumer.receive(timeoutMs);
        if (message == null) {
            System.err.println("no message on " + queue.getQueueName() + " within " + timeoutMs + " ms");
            return 3;
        }
        String type;
        String body;
        if (message instanceof TextMessage) {
            type = "TextMessage";
            body = ((TextMessage) message).getText();
        } else if (message instanceof BytesMessage) {
            type = "BytesMessage";
            BytesMessage bytes = (BytesMessage) message;
            byte[] data = new byte[(int) bytes.getBodyLength()];
            bytes.readBytes(data);
            body = new String(data, StandardCharsets.UTF_8);
        } else {
            type = message.getClass().getSimpleName();
            body = "";
        }
        out.println("type=" + type);
        out.println("JMSMessageID=" + escape(message.getJMSMessageID()));
        out.println("JMSCorrelationID=" + escape(message.getJMSCorrelationID()));
        out.println("JMSType=" + escape(message.getJMSType()));
        out.println("JMSDeliveryMode="
                + (message.getJMSDeliveryMode() == DeliveryMode.PERSISTENT ? "PERSISTENT" : "NON_PERSISTENT"));
        out.println("JMSRedelivered=" + message.getJMSRedelivered());
        List<String> names = new ArrayList<>();
        for (Enumeration<?> e = message.getPropertyNames(); e.hasMoreElements();) {
            names.add((String) e.nextElement());
        }
        Collections.sort(names);
        for (String name : names) {
            Object value = message.getObjectProperty(name);
            out.println("property." + name + "=" + escape(String.valueOf(value)));
            out.println("propertyType." + name + "=" + (value == null ? "null" : value.getClass().getSimpleName()));
        }
        out.println("--body--");
        out.print(body);
        out.flush();
        return 0;
    }

    private static String escape(String value) {
        if (value == null) {
            return "";
        }
        return value.replace("\\", "\\\\").replace("\n", "\\n");
    }
}
